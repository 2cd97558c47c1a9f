import type { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { batchWrites, type RedisClient } from './connection.js';

type Argument = string | Buffer | number;

/**
 * A Lua script run by its SHA1 (`EVALSHA`), sent in full (`EVAL`) only when the server does not
 * know it yet. Unlike ioredis's `defineCommand`, it adds nothing to a client the application
 * passed in. On a Cluster, ioredis routes it by its keys, which must share one slot.
 */
export class LuaScript {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script; bulk replies come back as strings. */
  run(client: RedisClient, keys: string[], args: Argument[]): Promise<unknown> {
    return this.#eval(client, keys, args, false);
  }

  /** Runs the script; bulk replies come back as Buffers (for binary payloads). */
  runBuffer(client: RedisClient, keys: string[], args: Argument[]): Promise<unknown> {
    return this.#eval(client, keys, args, true);
  }

  async #eval(
    client: RedisClient,
    keys: string[],
    args: Argument[],
    buffers: boolean,
  ): Promise<unknown> {
    const call = (command: string, script: string) => {
      batchWrites(client);
      return buffers
        ? client.callBuffer(command, script, keys.length, ...keys, ...args)
        : client.call(command, script, keys.length, ...keys, ...args);
    };
    try {
      return await call('EVALSHA', this.#sha);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return call('EVAL', this.#source);
    }
  }
}
