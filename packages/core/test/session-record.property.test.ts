import {
  MemoryHistory,
  MemoryStateStore,
  type ScaledWebSocketServer,
  WscaleError,
} from '@wscale/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { fuzzParameters } from './helpers/arbitraries.js';
import { TestCluster } from './helpers/nodes.js';
import { recordedClose, V1Peer } from './helpers/v1-client.js';

/**
 * A session record is read back from a store that anything may have written to (an operator, an
 * older version, a bit flip): whatever is stored under a session's key, presenting its token gives
 * the client either its session or a fresh one, never an internal error.
 */

const cluster = new TestCluster();
const stores: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await cluster.closeAll();
  for (const store of stores.splice(0)) await store.close();
});

async function startNode() {
  const store = new MemoryStateStore();
  const history = new MemoryHistory();
  stores.push(store, history);
  const [node] = await cluster.start(1, {
    stateStore: store,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: 'chat*', store: history }],
    authorizeJoin: (_client, room) => room.startsWith('chat'),
  });
  node!.on('connection', (client) => {
    if (client.v1 && !client.resumed) void client.join('chat');
  });
  const errors: unknown[] = [];
  node!.on('error', (error) => errors.push(error));
  return { node: node!, store, errors };
}

/** A session that was closed cleanly: its token, key, and the record as the node wrote it. */
async function closedSession(node: ScaledWebSocketServer, store: MemoryStateStore) {
  const { peer, welcome } = await V1Peer.connect(node);
  await peer.next('joined');
  const key = `wscale:session:${welcome.client}`;
  peer.ws.close();
  await recordedClose(store, welcome.client);
  const stored = await store.get(key);
  return { token: welcome.session, key, record: JSON.parse(stored!.value) as object };
}

describe('a damaged session record', () => {
  it('gives a fresh session (reason expired) and reports SESSION_RECORD_DAMAGED', async () => {
    const { node, store, errors } = await startNode();
    const { token, key, record } = await closedSession(node, store);
    await store.set(key, JSON.stringify({ ...record, own: 42 }));
    const { peer, welcome } = await V1Peer.connect(node, { session: token });
    expect(welcome).toMatchObject({ resumed: false, reason: 'expired' });
    expect(welcome.session).not.toBe(token);
    const damage = errors.find((error) => error instanceof WscaleError);
    expect(damage).toMatchObject({ code: 'SESSION_RECORD_DAMAGED', name: 'SessionRecordError' });
    expect((damage as Error).message).toContain('"own"');
    // The fresh session works as any new one.
    expect(await peer.next('joined')).toMatchObject({ r: 'chat' });
  });

  it('still resumes an intact record', async () => {
    const { node, store, errors } = await startNode();
    const { token } = await closedSession(node, store);
    const { welcome } = await V1Peer.connect(node, { session: token });
    expect(welcome).toMatchObject({ resumed: true });
    expect(Object.keys(welcome.rooms)).toEqual(['chat']);
    expect(errors).toEqual([]);
  });

  it('never fails a resume, whatever bytes are stored under the session (fuzzed)', async () => {
    const { node, store, errors } = await startNode();
    const field = (valid: unknown) =>
      fc.oneof({ weight: 3, arbitrary: fc.constant(valid) }, fc.jsonValue());
    const { record: sample } = await closedSession(node, store);
    // Fields the server writes for changes made while the client is away, too; `close` only
    // damaged (a valid one closes the connection on purpose: see between-connections.test.ts).
    const isClose = (value: unknown) =>
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === 'string';
    const shaped = fc
      .record(
        {
          ...Object.fromEntries(
            Object.entries({
              ...sample,
              replies: [{ s: 1, d: 'x' }],
              at: { chat: { o: 0, e: 'an-epoch' } },
              doubt: true,
              claim: 3,
            }).map(([name, valid]) => [name, field(valid)]),
          ),
          close: fc.jsonValue().filter((value) => !isClose(value)),
        },
        { requiredKeys: [] },
      )
      .map((value) => JSON.stringify(value));
    const stored = fc.oneof(fc.string(), fc.json(), shaped);
    await fc.assert(
      fc.asyncProperty(stored, async (value) => {
        errors.length = 0;
        const { token, key } = await closedSession(node, store);
        await store.set(key, value);
        const { peer, welcome } = await V1Peer.connect(node, { session: token });
        if (!welcome.resumed) {
          expect(['expired', 'forbidden']).toContain(welcome.reason);
        }
        for (const error of errors) expect(error).toBeInstanceOf(WscaleError);
        // The connection is served: a ping is answered.
        peer.send({ t: 'ping' });
        await peer.next('pong');
        peer.ws.terminate();
      }),
      { ...fuzzParameters(40), timeout: 10_000 },
    );
  }, 120_000);
});
