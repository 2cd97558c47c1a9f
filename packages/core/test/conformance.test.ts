import { MemoryBroker, MemoryBus, MemoryHistory, MemoryStateStore } from '@wscale/core';
import { brokerSuite, historySuite, stateStoreSuite } from '@wscale/core/testing';
import { afterEach, describe, it } from 'vitest';
import { shared } from './helpers/shared.js';

const runner = { describe, it, afterEach };

describe('MemoryBroker', () => {
  const bus = new MemoryBus();
  brokerSuite(runner, {
    create: () => new MemoryBroker({ bus }),
    outage: { stop: async () => bus.disconnect(), start: async () => bus.reconnect() },
  });
});

describe('MemoryStateStore', () => {
  const store = shared((ttlMs: number) => new MemoryStateStore({ ttlMs }));
  stateStoreSuite(runner, { create: ({ ttlMs }) => store.get(ttlMs) });
  afterEach(store.reset);
});

describe('MemoryHistory', () => {
  const history = shared((maxEntries: number) => new MemoryHistory({ maxEntries }));
  historySuite(runner, { create: ({ maxEntries }) => history.get(maxEntries) });
  afterEach(history.reset);
});
