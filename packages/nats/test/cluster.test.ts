import { connect } from '@nats-io/transport-node';
import { brokerSuite, historySuite, stateStoreSuite } from '@wscale/core/testing';
import { NatsBroker, NatsHistory, NatsKvStateStore } from '@wscale/nats';
import { type NatsCluster, skipWithoutNats, startNatsCluster } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import { fastReconnect, replicatedCasIsSafe, uniqueName } from './helpers/clients.js';

const runner = { describe, it, afterEach };

describe.skipIf(skipWithoutNats())('NATS adapters on a 3-node cluster', () => {
  let cluster: NatsCluster;
  let next = 0;
  /**
   * Each instance is pinned to one node first (the others are its failover list), turn by turn,
   * so the suites' "other node" really is on another server and messages cross routes.
   */
  const servers = () => {
    const first = next++ % cluster.urls.length;
    return [...cluster.urls.slice(first), ...cluster.urls.slice(0, first)];
  };
  const connectionOptions = { ...fastReconnect, noRandomize: true };
  const name = uniqueName('cluster');

  /** R3 where the server serialises compare-and-set on replicated streams, else R1 (see README). */
  let replicas = 1;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    const nc = await connect({ servers: cluster.urls[0] });
    replicas = replicatedCasIsSafe(nc.info?.version ?? '0') ? 3 : 1;
    await nc.close();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  describe('NatsBroker', () => {
    brokerSuite(runner, {
      // A subscription reaches the other servers of the cluster a moment after its own has it
      // (route interest has no acknowledgement): 50 ms was once too short for CI's busy machine.
      create: () =>
        new NatsBroker({ servers: servers(), connectionOptions, subscribeSettleMs: 250 }),
    });
  });

  describe('NatsKvStateStore', () => {
    stateStoreSuite(runner, {
      create: ({ ttlMs }) =>
        new NatsKvStateStore({
          servers: servers(),
          connectionOptions,
          bucket: `${name}_${ttlMs}`,
          ttlMs,
          replicas,
        }),
    });
  });

  describe('NatsHistory', () => {
    historySuite(runner, {
      create: ({ maxEntries }) =>
        new NatsHistory({
          servers: servers(),
          connectionOptions,
          stream: `${name}_${maxEntries}`,
          subjectPrefix: `${name}_${maxEntries}.`,
          maxEntries,
          replicas,
        }),
    });
  });
});
