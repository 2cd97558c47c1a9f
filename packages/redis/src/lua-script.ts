import { createHash } from 'node:crypto';
import { batchWrites, pipelinesItself, type RedisClient } from './connection.js';
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

  /** Runs the script; bulk replies come back as strings. */
  run(client: RedisClient, keys: string[], args: Argument[]): Promise<unknown> {
    return this.#eval(client, keys, args, 'utf8');
  }

  /** Runs the script; bulk replies come back as Buffers (for binary payloads). */
  runBuffer(client: RedisClient, keys: string[], args: Argument[]): Promise<unknown> {
    return this.#eval(client, keys, args, null);
  }

  #eval(
    client: RedisClient,
    keys: string[],
    args: Argument[],
    encoding: BufferEncoding | null,
  ): Promise<unknown> {
    const socket = (client as { stream?: object }).stream;
    if (socket !== undefined && this.#sentOn.get(client) !== socket) {
      this.#sentOn.set(client, socket);
      return call(client, 'EVAL', [this.#source, keys.length, ...keys, ...args], encoding);
    }
    return call(client, 'EVALSHA', [this.#sha, keys.length, ...keys, ...args], encoding).catch(
      (error: unknown) => {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return call(client, 'EVAL', [this.#source, keys.length, ...keys, ...args], encoding);
      },
    );
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
): Promise<unknown> {
  try {
    batchWrites(client);
    if (client.options.keyPrefix || pipelinesItself(client)) {
      return encoding === null ? client.callBuffer(name, ...args) : client.call(name, ...args);
    }
    const command = new WrittenCommand(name, args, writeCommand(name, args), encoding);
    return client.sendCommand(command) as Promise<unknown>;
  } catch (error) {
    return Promise.reject(error);
  }
}
