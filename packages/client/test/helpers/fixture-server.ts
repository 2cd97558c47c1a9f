import type { AddressInfo } from 'node:net';
import {
  type ClientMessage,
  decodeClientFrame,
  encodeBinary,
  encodeText,
  type HelloMessage,
  PROTOCOL,
  type ServerMessage,
  type WelcomeMessage,
} from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { type WebSocket, WebSocketServer } from 'ws';

/** A frame the fixture received, decoded with the shared codec. */
export interface Received {
  message: ClientMessage;
  binary?: Uint8Array;
}

/** What a request handler answers: a payload, an error, or nothing at all (to test timeouts). */
export type RequestAnswer =
  | { d?: string; binary?: Uint8Array }
  | { error: { code: 'HANDLER_FAILED' | 'FORBIDDEN' | 'BAD_REQUEST'; message: string } }
  | 'no-answer';

/** How the fixture answers. Every hook has a default that follows the protocol. */
export interface FixtureBehavior {
  /** Select `wscale.v1` (false: accept the socket without a subprotocol). @default true */
  selectProtocol: boolean;
  /** Answer `ping` with `pong`. @default true */
  answerPing: boolean;
  /** Builds the welcome; the default keeps sessions in memory and resumes known tokens. */
  welcome(hello: HelloMessage, connection: FixtureConnection): WelcomeMessage | undefined;
  /** Answers `join`; the default sends `joined` (without offsets) then an empty ack. */
  join(room: string, connection: FixtureConnection, id: number): void;
  /** Answers `req`; the default echoes the payload. */
  request(received: Received): RequestAnswer;
}

/**
 * A small real `wscale.v1` server for the client's tests: a `ws` server on a free loopback port
 * that decodes what it receives with the shared codec, answers as the protocol says, and lets a
 * test send any server message, close with any code, or drop the connection.
 */
export class FixtureServer {
  readonly connections: FixtureConnection[] = [];
  readonly behavior: FixtureBehavior;
  /** Session token → client id, for the default resume. */
  readonly sessions = new Map<string, string>();
  /** Upgrade attempts seen, including refused ones: when, and the request URL. */
  readonly attempts: Array<{ at: number; url: string }> = [];
  /** Answer upgrades with this HTTP status instead of accepting them. */
  refuseWith: number | undefined;
  readonly #wss: WebSocketServer;

  private constructor(wss: WebSocketServer, behavior: Partial<FixtureBehavior>) {
    this.#wss = wss;
    this.behavior = {
      selectProtocol: true,
      answerPing: true,
      welcome: (hello) => this.#defaultWelcome(hello),
      join: (room, connection, id) => {
        connection.send({ t: 'joined', r: room });
        connection.send({ t: 'ack', id });
      },
      request: ({ message, binary }) =>
        binary ? { binary } : { d: (message as { d?: string }).d },
      ...behavior,
    };
    wss.on('connection', (ws) => {
      const connection = new FixtureConnection(ws, this);
      this.connections.push(connection);
    });
  }

  static async start(behavior: Partial<FixtureBehavior> = {}): Promise<FixtureServer> {
    let server: FixtureServer | undefined;
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols) =>
        server?.behavior.selectProtocol !== false && protocols.has(PROTOCOL) ? PROTOCOL : false,
      verifyClient: (info, done) => {
        server?.attempts.push({ at: performance.now(), url: info.req.url ?? '' });
        if (server?.refuseWith !== undefined) done(false, server.refuseWith);
        else done(true);
      },
    });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    server = new FixtureServer(wss, behavior);
    return server;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#wss.address() as AddressInfo).port}`;
  }

  /** The latest connection. */
  get last(): FixtureConnection {
    const connection = this.connections.at(-1);
    if (connection === undefined) throw new Error('no connection yet');
    return connection;
  }

  /** Waits for the `count`-th connection (1-based) and its `hello`. */
  async connection(count: number, timeoutMs = 3000): Promise<FixtureConnection> {
    await until(() => this.connections.length >= count, timeoutMs, `connection #${count}`);
    const connection = this.connections[count - 1]!;
    await connection.waitFor((m) => m.t === 'hello', timeoutMs);
    return connection;
  }

  async close(): Promise<void> {
    for (const client of this.#wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #defaultWelcome(hello: HelloMessage): WelcomeMessage {
    const known = hello.session === undefined ? undefined : this.sessions.get(hello.session);
    if (known !== undefined && hello.session !== undefined) {
      const rooms = Object.fromEntries(
        Object.entries(hello.rooms ?? {}).map(([room, p]) => [
          room,
          { recovered: true, o: p.o, e: p.e },
        ]),
      );
      return {
        t: 'welcome',
        session: hello.session,
        client: known,
        node: 'fixture',
        resumed: true,
        rooms,
      };
    }
    const n = this.sessions.size + 1;
    const session = `token-${n}`;
    this.sessions.set(session, `client-${n}`);
    return {
      t: 'welcome',
      session,
      client: `client-${n}`,
      node: 'fixture',
      resumed: false,
      reason: hello.session === undefined ? 'new' : 'expired',
      rooms: {},
    };
  }
}

/** One client connection of the fixture. */
export class FixtureConnection {
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(ws: WebSocket, server: FixtureServer) {
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer, isBinary) => {
      const received = decodeClientFrame(isBinary ? new Uint8Array(data) : data.toString('utf8'));
      this.received.push(received);
      const { message } = received;
      const behavior = server.behavior;
      switch (message.t) {
        case 'hello': {
          const welcome = behavior.welcome(message, this);
          if (welcome) this.send(welcome);
          break;
        }
        case 'ping':
          if (behavior.answerPing) this.send({ t: 'pong' });
          break;
        case 'join':
          behavior.join(message.r, this, message.id);
          break;
        case 'leave':
          this.send({ t: 'ack', id: message.id });
          break;
        case 'req': {
          const answer = behavior.request(received);
          if (answer === 'no-answer') break;
          if ('error' in answer) this.send({ t: 'ack', id: message.id, error: answer.error });
          else if (answer.binary) this.send({ t: 'ack', id: message.id }, answer.binary);
          else
            this.send({
              t: 'ack',
              id: message.id,
              ...(answer.d === undefined ? {} : { d: answer.d }),
            });
          break;
        }
      }
    });
  }

  /** The messages received, without their payloads' bytes. */
  get messages(): ClientMessage[] {
    return this.received.map((r) => r.message);
  }

  /** Sends a server message; with `payload`, as a binary frame. */
  send(message: ServerMessage, payload?: Uint8Array): void {
    this.ws.send(payload ? encodeBinary(message, payload) : encodeText(message));
  }

  /** Waits until a received message matches. */
  async waitFor(match: (message: ClientMessage) => boolean, timeoutMs = 3000): Promise<Received> {
    let found: Received | undefined;
    await until(
      () => {
        found = this.received.find((r) => match(r.message));
        return found !== undefined;
      },
      timeoutMs,
      'a matching client message',
    );
    return found!;
  }
}
