import { type SessionSnapshot, type WelcomeInfo, WscaleClient } from '@wscale/client';
import { type History, ScaledWebSocketServer, type StateStore } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { WebSocket } from 'ws';

/** What a test closes when it ends, last opened first. */
export type Closers = Array<() => Promise<void>>;

/**
 * A node for the outage tests of an adapter: `feed` (and the other `rooms` given) keep their
 * history in `history`, sessions are in `stateStore` (their direct messages in `directHistory`,
 * when given), and every client is joined to each. The node and the adapters are closed with
 * `closers`.
 */
export async function outageNode(
  stateStore: StateStore,
  history: History,
  closers: Closers,
  rooms: string[] = ['feed'],
  /** Where sessions keep their direct messages, if they do (closed with the node). */
  directHistory?: History,
): Promise<ScaledWebSocketServer> {
  const node = new ScaledWebSocketServer({
    port: 0,
    host: '127.0.0.1',
    stateStore,
    sessionSecret: 'a-secret-for-the-outage-tests',
    history: [{ rooms, store: history }],
    ...(directHistory === undefined ? {} : { directHistory }),
  });
  node.on('error', () => undefined);
  node.on('connection', (client) => {
    for (const room of rooms) void client.join(room);
  });
  closers.push(
    () => stateStore.close(),
    () => history.close(),
    ...(directHistory === undefined ? [] : [() => directHistory.close()]),
    () => node.close(),
  );
  await node.ready();
  return node;
}

/**
 * A `wscale.v1` client of the node with the client's default timeouts, recording its welcomes,
 * its closes, the texts of `feed` and its direct messages.
 */
export function outageClient(
  node: ScaledWebSocketServer,
  closers: Closers,
  resume?: SessionSnapshot,
) {
  const welcomes: WelcomeInfo[] = [];
  const closes: string[] = [];
  const texts: string[] = [];
  const direct: string[] = [];
  const client = new WscaleClient(`ws://127.0.0.1:${node.address()!.port}/`, {
    WebSocket,
    network: false,
    ...(resume ? { resume } : {}),
  });
  client.on('welcome', (info) => welcomes.push(info));
  client.on('close', (close) => closes.push(`${close.code} ${close.reason}`));
  client.on('message', (data, meta) => {
    if (meta.room === 'feed') texts.push(String(data));
    if (meta.room === undefined) direct.push(String(data));
  });
  closers.push(() => client.close());
  return { client, welcomes, closes, texts, direct };
}

/**
 * A session to resume: a client of the node joins `feed` (and the node's other rooms, `rooms` of
 * them in all), gets `kept` there when given (sent through the node), and closes. Its snapshot,
 * and what it recorded.
 */
export async function leftSession(
  node: ScaledWebSocketServer,
  closers: Closers,
  kept?: string,
  rooms = 1,
) {
  const first = outageClient(node, closers);
  const joined = () => first.client.rooms.includes('feed') && first.client.rooms.length >= rooms;
  await until(joined, 5000, 'the first client in its rooms');
  if (kept !== undefined) {
    await node.to('feed').send(kept);
    await until(() => first.texts.length === 1, 5000, 'the first message');
  }
  const saved = first.client.snapshot()!;
  await first.client.close();
  return { first, saved };
}
