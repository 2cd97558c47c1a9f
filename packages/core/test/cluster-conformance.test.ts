import { ClusterHub } from '@wscale/core';
import { brokerSuite, historySuite, stateStoreSuite } from '@wscale/core/testing';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
import {
  forkWorkers,
  RemoteBroker,
  RemoteHistory,
  RemoteStateStore,
  stopWorkers,
  type WorkerHandle,
} from './helpers/cluster-workers.js';

const runner = { describe, it, afterEach };

// The suites run here, in the primary, which also runs the hub. Every instance they open is a
// real ClusterBroker / ClusterStateStore / ClusterHistory inside one of two real worker processes,
// taken in turn, so "another node" in a suite is always another process talking IPC to the hub.
describe.each(['json', 'advanced'] as const)('node:cluster, %s IPC serialization', (mode) => {
  let hub: ClusterHub | undefined;
  let workers: WorkerHandle[] = [];
  let turn = 0;
  const nextWorker = () => workers[turn++ % workers.length]!;

  beforeAll(async () => {
    hub = new ClusterHub();
    workers = await forkWorkers(2, mode);
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await hub?.close();
  });

  brokerSuite(runner, {
    create: () => RemoteBroker.create(nextWorker()),
    // An outage of the cluster "service" is its hub closing and a new one attaching.
    outage: {
      stop: async () => {
        await hub?.close();
        hub = undefined;
      },
      start: async () => {
        hub ??= new ClusterHub();
      },
    },
  });

  stateStoreSuite(runner, {
    create: ({ ttlMs }) => RemoteStateStore.create(nextWorker(), { ttlMs }),
  });

  historySuite(runner, {
    create: ({ maxEntries }) => RemoteHistory.create(nextWorker(), { maxEntries }),
  });
});
