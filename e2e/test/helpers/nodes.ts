import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('../../fixtures/node.mjs', import.meta.url));

/** A wscale node in a process of its own (the built packages), driven over IPC. */
export class NodeProcess {
  readonly id: string;
  port = 0;
  /** The node's `presence` events, as "join user" / "leave user", in order. */
  readonly presenceEvents: string[] = [];
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;

  private constructor(id: string, env: Record<string, string>) {
    this.id = id;
    this.#child = fork(fixture, [], {
      env: { ...process.env, ...env, NODE_ID: id },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
    this.#child.on('message', (message: { presenceEvent?: { type: string; user: string } }) => {
      const event = message.presenceEvent;
      if (event !== undefined) this.presenceEvents.push(`${event.type} ${event.user}`);
    });
  }

  /** Starts a node and waits until it listens. */
  static async start(id: string, env: Record<string, string>, timeoutMs = 15_000) {
    const node = new NodeProcess(id, env);
    const ready = await node.#next((message) => message.ready === true, timeoutMs);
    node.port = ready.port as number;
    return node;
  }

  /** Starts three nodes, `<prefix>-0` to `<prefix>-2`, with the same env. */
  static startThree(prefix: string, env: Record<string, string>): Promise<NodeProcess[]> {
    return Promise.all([0, 1, 2].map((i) => NodeProcess.start(`${prefix}-${i}`, env)));
  }

  /** Publishes `count` numbered messages to the room from this node; resolves when done. */
  async publish(count: number, intervalMs: number): Promise<void> {
    this.#child.send({ publish: { count, intervalMs } });
    await this.#next((message) => message.published === count, count * intervalMs + 30_000);
  }

  /** Broadcasts a text to a room from this node. */
  async broadcast(room: string, text: string): Promise<void> {
    this.#child.send({ broadcast: { room, text } });
    await this.#next((message) => message.done === true, 10_000);
  }

  /** Sends a text to one client, wherever it is connected, from this node. */
  async direct(id: string, text: string): Promise<void> {
    this.#child.send({ direct: { id, text } });
    await this.#next((message) => message.done === true, 10_000);
  }

  /** Joins one client to a room, wherever it is (or between its connections), from this node. */
  async join(id: string, room: string): Promise<void> {
    this.#child.send({ join: { id, room } });
    await this.#next((message) => message.done === true, 10_000);
  }

  /** Sends "1" to "count" to each client from this node, one round every `intervalMs`. */
  async directs(ids: string[], count: number, intervalMs: number): Promise<void> {
    this.#child.send({ directs: { ids, count, intervalMs } });
    await this.#next((message) => message.directsSent === count, count * intervalMs + 30_000);
  }

  /** Asks this node which clients are in a room cluster-wide (`wss.fetchClients`). */
  async fetchClients(room: string, timeoutMs: number) {
    this.#child.send({ fetchClients: { room, timeoutMs } });
    const answer = await this.#next((message) => message.fetched !== undefined, timeoutMs + 10_000);
    return answer.fetched as { clients: Array<{ id: string; nodeId: string }>; missing: string[] };
  }

  /** The users this node lists in a presence room (`wss.presence(room)`), and the nodes missing. */
  async presence(room: string): Promise<{ users: string[]; missing: string[] }> {
    this.#child.send({ presence: room });
    const answer = await this.#next((message) => message.presenceList !== undefined, 10_000);
    const list = answer.presenceList as { members: Array<{ user: string }>; missing: string[] };
    return { users: list.members.map((member) => member.user), missing: list.missing };
  }

  /** Freezes the process (SIGSTOP), as a node that hangs; {@link NodeProcess.thaw} resumes it. */
  freeze(): void {
    this.#child.kill('SIGSTOP');
  }

  /** Lets a frozen process run again (SIGCONT). */
  thaw(): void {
    this.#child.kill('SIGCONT');
  }

  /** Kills the process at once, as a crash would. */
  async kill(): Promise<void> {
    this.#child.kill('SIGKILL');
    await this.#exited;
  }

  /** Closes the node gracefully (`wss.close()`), as a rolling deploy would. */
  async drain(): Promise<void> {
    this.#child.send({ drain: true });
    await this.#exited;
  }

  /** Stops the process if it still runs. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.thaw();
      await this.kill();
    }
  }

  #next(match: (message: Record<string, unknown>) => boolean, timeoutMs: number) {
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#child.off('message', onMessage);
        reject(new Error(`node ${this.id}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (message: Record<string, unknown>) => {
        if (!match(message)) return;
        clearTimeout(timer);
        this.#child.off('message', onMessage);
        resolve(message);
      };
      this.#child.on('message', onMessage);
    });
  }
}
