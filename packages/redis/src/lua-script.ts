import { createHash } from 'node:crypto';
import { type SendCommand, sendAsItIs } from './command-deadlines.js';
import { batchWrites, isCluster, pipelinesItself, type RedisClient } from './connection.js';
import { type Argument, WrittenCommand, writeCommand } from './written-command.js';

/**
 * A Lua script run by its SHA1 (`EVALSHA`), sent in full (`EVAL`) only when the server may not
 * know it: first on each connection of one Redis (a restarted or promoted server has an empty
 * script cache), and when the server says `NOSCRIPT`. Unlike ioredis's `defineCommand`, it adds
 * nothing to a client the application passed in. On a Cluster, ioredis routes it by its keys,
 * which must share one slot.
 */
export class LuaScript {
  readonly #source: string;
  readonly #sha: string;
  /**
   * The socket of each client's connection this script was sent in full on. Redis runs one
   * connection's commands in order, so every call after that one finds the script loaded: none
   * can overtake an earlier one that had to be sent again after a `NOSCRIPT`, as an `EVALSHA`
   * sent while another client loaded the script would.
   */
  readonly #sentOn = new WeakMap<RedisClient, object>();

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * Runs the script; bulk replies come back as strings. `send` hands the command to a standalone
   * connection (see {@link SendCommand}).
   */
  run(client: RedisClient, keys: string[], args: Argument[], send = sendAsItIs): Promise<unknown> {
    return this.#eval(client, keys, args, 'utf8', send);
  }

  /** Runs the script; bulk replies come back as Buffers (for binary payloads). */
  runBuffer(
    client: RedisClient,
    keys: string[],
    args: Argument[],
    send = sendAsItIs,
  ): Promise<unknown> {
    return this.#eval(client, keys, args, null, send);
  }

  #eval(
    client: RedisClient,
    keys: string[],
    args: Argument[],
    encoding: BufferEncoding | null,
    send: SendCommand,
  ): Promise<unknown> {
    const socket = (client as { stream?: object }).stream;
    const evalIt = () =>
      call(client, 'EVAL', [this.#source, keys.length, ...keys, ...args], encoding, send);
    if (socket !== undefined && this.#sentOn.get(client) !== socket) {
      this.#sentOn.set(client, socket);
      return evalIt();
    }
    return call(
      client,
      'EVALSHA',
      [this.#sha, keys.length, ...keys, ...args],
      encoding,
      send,
    ).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return evalIt();
    });
  }
}

/**
 * Sends a command, written in one piece (a Cluster routes it by its keys, as it routes its own);
 * as ioredis writes it on a client with ioredis's own `keyPrefix`, which ioredis adds to the
 * script's keys, and on a Cluster that gathers commands into pipelines itself.
 */
function call(
  client: RedisClient,
  name: string,
  args: Argument[],
  encoding: BufferEncoding | null,
  send: SendCommand,
): Promise<unknown> {
  try {
    batchWrites(client);
    if (client.options.keyPrefix || pipelinesItself(client)) {
      return encoding === null ? client.callBuffer(name, ...args) : client.call(name, ...args);
    }
    const command = new WrittenCommand(name, args, writeCommand(name, args), encoding);
    // (The guard above narrowed `client` to one Redis, though a Cluster may still come here.)
    const target = client as RedisClient;
    return isCluster(target)
      ? (target.sendCommand(command) as Promise<unknown>)
      : send(target, command);
  } catch (error) {
    return Promise.reject(error);
  }
}
