import { NatsBroker } from '@wscale/nats';
import {
  expectRunningNodesKnownOnReady,
  type SingleNats,
  skipWithoutNats,
  startNatsServer,
} from '@wscale/test-support';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { fastReconnect } from './helpers/clients.js';

describe.skipIf(skipWithoutNats())('a node joining a cluster on NATS', () => {
  let nats: SingleNats;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(() => nats?.close());

  it('knows the nodes already running once ready: a query made at once asks every one of them', () =>
    expectRunningNodesKnownOnReady(
      () => new NatsBroker({ servers: nats.server.url, connectionOptions: fastReconnect }),
    ));
});
