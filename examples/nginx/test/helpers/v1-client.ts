import WebSocket from 'ws';

/** A room position as `wscale.v1` carries it: the last offset seen and its epoch. */
export interface Position {
  o: number;
  e: string;
}

/** A `wscale.v1` frame the server sent (text frames only: this example sends no binary). */
export interface Frame {
  t: string;
  [field: string]: unknown;
}

/**
 * A minimal `wscale.v1` client over `ws`, speaking the protocol of docs/protocol.md by hand: hello,
 * welcome, room positions from `joined` and `msg`, resume with the session token. Enough to check
 * what the load balancer and the nodes do; applications use `@wscale/client`.
 */
export class V1Client {
  readonly ws: WebSocket;
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** The last position seen per room. */
  readonly positions = new Map<string, Position>();
  /** Resolves with the close code. */
  readonly closed: Promise<number>;
  readonly #waiters = new Set<() => void>();

  private constructor(url: string) {
    this.ws = new WebSocket(url, 'wscale.v1');
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => resolve(code)));
    this.ws.on('error', () => undefined); // a killed node: `closed` says how it ended
    this.ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame;
      if ((frame.t === 'joined' || frame.t === 'msg') && typeof frame.r === 'string') {
        if (typeof frame.o === 'number') {
          this.positions.set(frame.r, { o: frame.o, e: String(frame.e) });
        }
      }
      this.frames.push(frame);
      for (const wake of this.#waiters) wake();
    });
  }

  /**
   * Connects, says hello (resuming `session` from `positions` when given) and resolves with the
   * client once the server's `welcome` arrived.
   */
  static async connect(
    url: string,
    resume?: { session: string; positions: Map<string, Position> },
  ): Promise<V1Client> {
    const client = new V1Client(url);
    await new Promise<void>((resolve, reject) => {
      client.ws.once('open', () => resolve());
      client.ws.once('error', reject);
    });
    if (client.ws.protocol !== 'wscale.v1') throw new Error('the server did not pick wscale.v1');
    const hello: Frame = { t: 'hello' };
    if (resume !== undefined) {
      hello.session = resume.session;
      hello.rooms = Object.fromEntries(resume.positions);
      for (const [room, position] of resume.positions) client.positions.set(room, position);
    }
    client.ws.send(JSON.stringify(hello));
    await client.next((frame) => frame.t === 'welcome');
    return client;
  }

  /** The server's `welcome`. */
  get welcome(): Frame {
    const welcome = this.frames.find((frame) => frame.t === 'welcome');
    if (welcome === undefined) throw new Error('no welcome yet');
    return welcome;
  }

  /** The node that holds this connection, as its `welcome` says. */
  get node(): string {
    return String(this.welcome.node);
  }

  /** Sends an application message (`msg`). */
  say(text: string): void {
    this.ws.send(JSON.stringify({ t: 'msg', d: text }));
  }

  /** Application texts of the room's messages received so far, in order. */
  texts(room: string): string[] {
    return this.frames
      .filter((frame) => frame.t === 'msg' && frame.r === room)
      .map((frame) => (JSON.parse(String(frame.d)) as { text: string }).text);
  }

  /** The first frame (received or to come) that matches; fails after `timeoutMs`. */
  next(match: (frame: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(match);
        if (found === undefined) return false;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`),
        );
      }, timeoutMs);
      if (!check()) this.#waiters.add(check);
    });
  }

  /** Resolves once a message with this text arrived in the room. */
  heard(room: string, text: string): Promise<Frame> {
    return this.next(
      (frame) =>
        frame.t === 'msg' &&
        frame.r === room &&
        (JSON.parse(String(frame.d)) as { text: string }).text === text,
    );
  }

  close(): void {
    this.ws.close();
  }
}
