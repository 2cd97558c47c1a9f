import { MemoryStateStore } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const OLD = 'the-old-secret-of-enough-bytes';
const NEW = 'the-new-secret-of-enough-bytes';

const cluster = new TestCluster();
const stateStore = new MemoryStateStore();
afterEach(() => cluster.closeAll());

describe('session secret rotation (deployment.md)', () => {
  it('completes: a session resumed after the rotation survives dropping the old secret', async () => {
    // Before the rotation: the node signs with the old secret only.
    const [before] = await cluster.start(1, { stateStore, sessionSecret: OLD });
    const first = await V1Peer.connect(before!);
    expect(first.welcome.resumed).toBe(false);
    first.peer.ws.terminate();
    await until(() => before!.clients.size === 0, 2000, 'the drop');

    // During the rotation: new secret first, old one still accepted.
    const [during] = await cluster.start(1, { stateStore, sessionSecret: [NEW, OLD] });
    const second = await V1Peer.connect(during!, { session: first.welcome.session });
    expect(second.welcome).toMatchObject({ resumed: true, client: first.welcome.client });
    expect(second.welcome.session).not.toBe(first.welcome.session);
    second.peer.ws.terminate();
    await until(() => during!.clients.size === 0, 2000, 'the second drop');

    // After the rotation: the old secret is dropped; the token handed out on resume still works.
    const [after] = await cluster.start(1, { stateStore, sessionSecret: NEW });
    const stale = await V1Peer.connect(after!, { session: first.welcome.session });
    expect(stale.welcome).toMatchObject({ resumed: false, reason: 'invalid-token' });
    const third = await V1Peer.connect(after!, { session: second.welcome.session });
    expect(third.welcome).toMatchObject({ resumed: true, client: first.welcome.client });
  });
});
