import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A round-robin TCP load balancer on loopback, like the one in front of a real cluster: each new
 * connection goes to the next backend, skipping backends that refuse it. No stickiness.
 */
export class Balancer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #backends: number[];
  #next = 0;

  constructor(backends: number[]) {
    this.#backends = [...backends];
    this.#server = createServer((client) => this.#route(client, 0));
  }

  /** Starts listening on a free loopback port; resolves with it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as { port: number }).port;
  }

  /** Replaces the set of backends (ports on 127.0.0.1). */
  set backends(ports: number[]) {
    this.#backends = [...ports];
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #route(client: Socket, attempt: number): void {
    if (this.#backends.length === 0 || attempt >= this.#backends.length) {
      client.destroy();
      return;
    }
    const port = this.#backends[this.#next++ % this.#backends.length]!;
    const backend = createConnection({ host: '127.0.0.1', port });
    backend.once('error', () => {
      backend.destroy();
      if (!client.destroyed) this.#route(client, attempt + 1);
    });
    backend.once('connect', () => {
      backend.removeAllListeners('error');
      this.#track(client);
      this.#track(backend);
      client.pipe(backend).pipe(client);
      const end = () => {
        client.destroy();
        backend.destroy();
      };
      client.on('error', end).on('close', end);
      backend.on('error', end).on('close', end);
    });
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }
}
