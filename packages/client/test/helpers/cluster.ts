import type { AddressInfo } from 'node:net';
import {
  MemoryBroker,
  MemoryBus,
  MemoryHistory,
  MemoryStateStore,
  ScaledWebSocketServer,
  type ServerOptions,
} from '@wscale/core';
import { until } from '@wscale/core/testing';

/**
 * Real `ScaledWebSocketServer` nodes on one in-memory bus, sharing a session store and a history
 * for rooms named `chat*`: what a client meets behind a load balancer.
 */
export class Cluster {
  readonly bus = new MemoryBus();
  readonly stateStore = new MemoryStateStore({ ttlMs: 60_000 });
  readonly history = new MemoryHistory({ maxEntries: 1000 });
  readonly nodes: ScaledWebSocketServer[] = [];

  /** Starts `count` nodes (with `options` on top of the defaults) and waits until they see each other. */
  async start(
    count: number,
    options: Partial<ServerOptions> = {},
  ): Promise<ScaledWebSocketServer[]> {
    for (let i = 0; i < count; i++) {
      const node = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        nodeId: `node-${this.nodes.length + 1}`,
        broker: new MemoryBroker({ bus: this.bus }),
        stateStore: this.stateStore,
        sessionSecret: 'a-secret-for-the-client-tests',
        history: [{ rooms: 'chat*', store: this.history }],
        authorizeJoin: (_client, room) => room.startsWith('chat'),
        onRequest: (_client, data) => {
          if (data === 'boom') throw new Error('failed on purpose');
          return typeof data === 'string' ? data.toUpperCase() : Buffer.from([...data].reverse());
        },
        ...options,
      });
      node.on('error', () => undefined);
      this.nodes.push(node);
    }
    await Promise.all(this.nodes.map((node) => node.ready()));
    const total = this.nodes.length;
    await until(
      () => this.nodes.every((node) => node.nodes.length === total - 1),
      5000,
      'nodes to see each other',
    );
    return this.nodes;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.splice(0).map((node) => node.close()));
    await this.stateStore.close();
    await this.history.close();
  }
}

export function urlOf(node: ScaledWebSocketServer): string {
  return `ws://127.0.0.1:${(node.address() as AddressInfo).port}`;
}

/**
 * A state store that can be made to fail (`down = true`): every read and write rejects, as a
 * store that lost its server does, and the records it holds stay as they were for when it is back.
 */
export function switchableStore(store: MemoryStateStore): {
  stateStore: MemoryStateStore;
  down: boolean;
} {
  const failing = () => Promise.reject(new Error('the store is down'));
  const switchable = {
    down: false,
    stateStore: store,
  };
  switchable.stateStore = new Proxy(store, {
    get: (target, key) => {
      if (switchable.down && (key === 'get' || key === 'set' || key === 'delete')) return failing;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return switchable;
}
