import { type SessionSnapshot, type WelcomeInfo, WscaleClient } from '@wscale/client';
import { type History, ScaledWebSocketServer, type StateStore } from '@wscale/core';
import { WebSocket } from 'ws';

/** What a test closes when it ends, last opened first. */
export type Closers = Array<() => Promise<void>>;

/**
 * A node for the outage tests of an adapter: `feed` keeps its history in `history`, sessions are
 * in `stateStore`, and every client is joined to `feed`. The node and the adapters are closed
 * with `closers`.
 */
export async function outageNode(
  stateStore: StateStore,
  history: History,
  closers: Closers,
): Promise<ScaledWebSocketServer> {
  const node = new ScaledWebSocketServer({
    port: 0,
    host: '127.0.0.1',
    stateStore,
    sessionSecret: 'a-secret-for-the-outage-tests',
    history: [{ rooms: 'feed', store: history }],
  });
  node.on('error', () => undefined);
  node.on('connection', (client) => void client.join('feed'));
  closers.push(
    () => stateStore.close(),
    () => history.close(),
    () => node.close(),
  );
  await node.ready();
  return node;
}

/**
 * A `wscale.v1` client of the node with the client's default timeouts, recording its welcomes,
 * its closes and the texts of `feed`.
 */
export function outageClient(
  node: ScaledWebSocketServer,
  closers: Closers,
  resume?: SessionSnapshot,
) {
  const welcomes: WelcomeInfo[] = [];
  const closes: string[] = [];
  const texts: string[] = [];
  const client = new WscaleClient(`ws://127.0.0.1:${node.address()!.port}/`, {
    WebSocket,
    network: false,
    ...(resume ? { resume } : {}),
  });
  client.on('welcome', (info) => welcomes.push(info));
  client.on('close', (close) => closes.push(`${close.code} ${close.reason}`));
  client.on('message', (data, meta) => {
    if (meta.room === 'feed') texts.push(String(data));
  });
  closers.push(() => client.close());
  return { client, welcomes, closes, texts };
}
