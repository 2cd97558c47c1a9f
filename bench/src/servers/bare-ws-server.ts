import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { hello, isPublisher, Kind } from '../wire.js';
import { bounded, type NodeConfig, pingEvery, type RunningServer } from './config.js';

const TEXT = { binary: false } as const;

/**
 * A bare `ws` server in one process: the idle-memory baseline (broadcasts stay local), with the
 * same heartbeat as wscale ({@link pingEvery}).
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
  const stopPings = pingEvery(() => wss.clients);
  return {
    port: (wss.address() as AddressInfo).port,
    async close() {
      stopPings();
      for (const ws of wss.clients) ws.terminate();
      await bounded(new Promise((resolve) => wss.close(resolve)), 2000);
    },
  };
}
