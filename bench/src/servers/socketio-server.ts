import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter as createPubSubAdapter } from '@socket.io/redis-adapter';
import { createAdapter as createStreamsAdapter } from '@socket.io/redis-streams-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { directTarget, hello, isPublisher, Kind, ROOM, SIO_EVENT } from '../wire.js';
import { bounded, type NodeConfig, type RunningServer } from './config.js';

/** Socket.IO 4 (WebSocket transport only) with the Redis pub/sub or Redis Streams adapter. */
export async function startSocketIo(config: NodeConfig): Promise<RunningServer> {
  const redis = [new Redis(config.redisUrl!), new Redis(config.redisUrl!)];
  await Promise.all(redis.map((client) => new Promise((resolve) => client.once('ready', resolve))));
  const adapter =
    config.impl === 'socketio-streams'
      ? createStreamsAdapter(redis[0])
      : createPubSubAdapter(redis[0], redis[1]);
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'], serveClient: false, adapter });
  io.on('connection', (socket) => {
    socket.on(SIO_EVENT, (text: string) => {
      if (text.charCodeAt(0) === Kind.Direct) io.to(directTarget(text)).emit(SIO_EVENT, text);
      else io.to(ROOM).emit(SIO_EVENT, text);
    });
    if (isPublisher(socket.handshake.url)) return;
    void socket.join(ROOM);
    socket.emit(SIO_EVENT, hello(socket.id, config.node));
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: config.host, exclusive: true }, resolve);
  });
  return {
    port: (http.address() as AddressInfo).port,
    async close() {
      io.disconnectSockets(true);
      await bounded(io.close(), 3000);
      for (const client of redis) client.disconnect();
    },
  };
}
