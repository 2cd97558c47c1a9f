import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { hello, isPublisher, Kind } from '../wire.js';
import { bounded, type NodeConfig, type RunningServer } from './config.js';

const TEXT = { binary: false } as const;
/** wscale's default `heartbeatIntervalMs`. */
const PING_INTERVAL_MS = 30_000;

/**
 * A bare `ws` server in one process: the idle-memory baseline (broadcasts stay local). It pings
 * every client as often as wscale's heartbeat does, and keeps nothing for it: a socket's first
 * read (here, the pong) leaves about 165 bytes of Node and `ws` state behind, which a server that
 * never reads from its clients would not count.
 */
export async function startBareWs(config: NodeConfig): Promise<RunningServer> {
  const wss = new WebSocketServer({ port: 0, host: config.host, perMessageDeflate: false });
  let next = 0;
  wss.on('connection', (ws, request) => {
    const id = `${config.node}.${next++}`;
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      if (data[0] === Kind.Direct) return;
      for (const client of wss.clients) if (client !== ws) client.send(data, TEXT);
    });
    if (!isPublisher(request.url)) ws.send(hello(id, config.node));
  });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) ws.ping();
  }, PING_INTERVAL_MS);
  heartbeat.unref();
  return {
    port: (wss.address() as AddressInfo).port,
    async close() {
      clearInterval(heartbeat);
      for (const ws of wss.clients) ws.terminate();
      await bounded(new Promise((resolve) => wss.close(resolve)), 2000);
    },
  };
}
