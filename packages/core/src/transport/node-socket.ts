import { WebSocket } from 'ws';
import type { AnyClient } from './client.js';

/** Where a socket keeps its client, for the handlers every socket shares. */
export const CLIENT = Symbol('wscale.client');

/**
 * The `ws` socket of every connection of a node. It names its client, and hands it every ping and
 * pong: a sign of life for the heartbeat, and one operation of the client's rate limit (a flood of
 * them costs the node what one of messages does; a ping costs it a pong too), with no listener
 * per socket, which would add an entry to every socket's listener table (96 bytes).
 */
export class NodeSocket extends WebSocket {
  [CLIENT]?: AnyClient;

  // biome-ignore lint/suspicious/noExplicitAny: the signature of EventEmitter's emit.
  override emit(event: string | symbol, ...args: any[]): boolean {
    if (event === 'pong' || event === 'ping') this[CLIENT]?.control();
    return super.emit(event, ...args);
  }
}
