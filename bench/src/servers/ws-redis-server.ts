import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Redis } from 'ioredis';
import * as wsModule from 'ws';
import { type WebSocket, WebSocketServer } from 'ws';
import { hello, isPublisher, Kind, ROOM } from '../wire.js';
import { bounded, type NodeConfig, pingEvery, type RunningServer } from './config.js';

const TEXT = { binary: false } as const;

/** The part of `ws`'s Sender the experiment uses (not in @types/ws). */
interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}
const { Sender } = wsModule as unknown as {
  Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] };
};
const TEXT_FRAME: FrameOptions = {
  fin: true,
  opcode: 1,
  mask: false,
  readOnly: false,
  rsv1: false,
};

/** The socket under a `ws` connection (a private field of `ws`; fine for an experiment). */
function socketOf(ws: WebSocket): Duplex {
  return (ws as unknown as { _socket: Duplex })._socket;
}
const roomChannel = `bench:room:${ROOM}`;
const nodeChannel = (node: number) => `bench:node:${node}`;

/**
 * The hand-written baseline: `ws` and `ioredis` pub/sub with nothing else. Each node subscribes
 * one channel per room (and one for direct messages to its clients) and forwards what arrives to
 * its sockets; a broadcast is published once and delivered by every node from the subscription.
 * Payloads stay Buffers end to end. Client ids name their node, so a direct message is published
 * only to the node that holds its target.
 *
 * With `preframed` it is the experiment, not a contender: the baseline with the two things
 * wscale's design asks for done by hand — each broadcast framed once per node with the same bytes
 * written to every socket, and writes to a socket corked until the end of the tick.
 */
export async function startWsRedis(
  config: NodeConfig,
  { preframed = false } = {},
): Promise<RunningServer> {
  const pub = new Redis(config.redisUrl!, { lazyConnect: true });
  const sub = new Redis(config.redisUrl!, { lazyConnect: true });
  await Promise.all([pub.connect(), sub.connect()]);
  const members = new Set<WebSocket>();
  const byId = new Map<string, WebSocket>();
  const room = Buffer.from(roomChannel);
  const corked: Duplex[] = [];
  const uncork = () => {
    for (const socket of corked.splice(0)) socket.uncork();
  };
  const writeFramedOnce = (message: Buffer) => {
    const frame = Buffer.concat(Sender.frame(message, TEXT_FRAME));
    for (const ws of members) {
      const socket = socketOf(ws);
      if (socket.writableCorked === 0) {
        socket.cork();
        if (corked.push(socket) === 1) process.nextTick(uncork);
      }
      socket.write(frame);
    }
  };

  sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
    if (channel.equals(room)) {
      if (preframed) writeFramedOnce(message);
      else for (const ws of members) ws.send(message, TEXT);
      return;
    }
    const target = message.toString('latin1', 1, message.indexOf(124));
    byId.get(target)?.send(message, TEXT);
  });
  await sub.subscribe(roomChannel, nodeChannel(config.node));

  const wss = new WebSocketServer({
    port: 0,
    host: config.host,
    perMessageDeflate: false,
    clientTracking: false,
  });
  let next = 0;
  wss.on('connection', (ws, request) => {
    const id = `${config.node}.${next++}`;
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      if (data[0] !== Kind.Direct) {
        void pub.publish(roomChannel, data);
        return;
      }
      const target = data.toString('latin1', 1, data.indexOf(124));
      const local = byId.get(target);
      if (local !== undefined) local.send(data, TEXT);
      else void pub.publish(nodeChannel(Number(target.slice(0, target.indexOf('.')))), data);
    });
    byId.set(id, ws);
    ws.on('close', () => {
      byId.delete(id);
      members.delete(ws);
    });
    if (isPublisher(request.url)) return;
    members.add(ws);
    ws.send(hello(id, config.node));
  });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  // The same heartbeat as wscale's (its clients answer pongs, as wscale's do).
  const stopPings = pingEvery(() => byId.values());
  return {
    port: (wss.address() as AddressInfo).port,
    async close() {
      stopPings();
      for (const ws of byId.values()) ws.terminate();
      await bounded(new Promise((resolve) => wss.close(resolve)), 2000);
      pub.disconnect();
      sub.disconnect();
    },
  };
}
