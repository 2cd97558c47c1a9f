import type { BrokerStatus } from '@wscale/core';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

describe('brokerStatus (deployment.md, troubleshooting.md)', () => {
  it('starts a gauge from the current state, then follows every change', async () => {
    const [wss] = await cluster.start(1);
    // The broker was ready before anyone listened: no event will say so, the getter does.
    const gauge: BrokerStatus[] = [];
    gauge.push(wss!.brokerStatus);
    wss!.on('brokerStatus', (status) => gauge.push(status));
    expect(gauge).toEqual(['ready']);

    cluster.bus.disconnect();
    expect(wss!.brokerStatus).toBe('down');
    cluster.bus.reconnect();
    expect(wss!.brokerStatus).toBe('ready');
    expect(gauge).toEqual(['ready', 'down', 'ready']);
  });
});
