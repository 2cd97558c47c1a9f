import { type History, HistoryError, MemoryHistory, MemoryStateStore } from '@wscale/core';
import { inboxOf } from '@wscale/core/protocol';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** A history whose appends fail while `down` is set, as a store that lost its server. */
function breakable(history: History) {
  const state = { down: false };
  const view = new Proxy(history, {
    get: (target, key) => {
      if (state.down && key === 'append') {
        return () => Promise.reject(new HistoryError('the history is down'));
      }
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { view, state };
}

describe('direct messages kept per session while the history is down', () => {
  it('client(id).send() rejects with HISTORY_FAILED and delivers nothing, on any node', async () => {
    const history = breakable(new MemoryHistory());
    const [a, b] = await cluster.start(2, {
      stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
      sessionSecret: 'a-test-secret-of-enough-bytes',
      directHistory: history.view,
    });
    const { peer, welcome } = await V1Peer.connect(a!);
    const inbox = inboxOf(welcome.client);
    await a!.client(welcome.client).send('d1');
    await until(() => peer.texts(inbox).length === 1, 2000, 'd1');

    history.state.down = true;
    for (const node of [a!, b!]) {
      await expect(node.client(welcome.client).send('lost?')).rejects.toMatchObject({
        code: 'HISTORY_FAILED',
      });
    }
    // Nothing reached the client, not even without an offset.
    await delay(100);
    expect(peer.all('msg').map((message) => message.d)).toEqual(['d1']);

    history.state.down = false;
    await b!.client(welcome.client).send('d2');
    await until(() => peer.texts(inbox).length === 2, 2000, 'd2');
    expect(peer.all('msg').map((message) => [message.d, message.o])).toEqual([
      ['d1', 1],
      ['d2', 2],
    ]);
  });
});
