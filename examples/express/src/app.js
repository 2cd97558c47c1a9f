// @ts-check
import { createServer } from 'node:http';
import { ScaledWebSocketServer } from '@wscale/core';
import express from 'express';

const ROOM_NAME = /^[\w-]{1,64}$/;

/**
 * Builds the Express app, the HTTP server that serves it and the wscale node attached to that
 * server. Nothing listens yet: call `server.listen()` (after `await wss.ready()`).
 *
 * @param {Omit<import('@wscale/core').ServerOptions, 'port' | 'server' | 'noServer' | 'path'>} [options]
 *   more `ScaledWebSocketServer` options, e.g. a `broker` shared with other nodes
 * @returns {{
 *   app: import('express').Express,
 *   server: import('node:http').Server,
 *   wss: ScaledWebSocketServer,
 * }}
 */
export function createApp(options = {}) {
  const app = express();
  const server = createServer(app);
  // The WebSocket endpoint shares the app's port; every other path stays Express's.
  const wss = new ScaledWebSocketServer({ ...options, server, path: '/ws' });

  app.use(express.json({ limit: '16kb' }));

  app.get('/health', (_request, response) => {
    response.json({ status: 'ok', node: wss.nodeId, connections: wss.stats.connections });
  });

  // Rooms with members on any node; `missing` names nodes that did not answer in time.
  app.get('/api/rooms', async (_request, response) => {
    const { rooms, missing } = await wss.fetchRooms();
    response.json({ rooms, missing });
  });

  // An HTTP route that talks to WebSocket clients: the message reaches the room on every node.
  app.post('/api/rooms/:room/messages', async (request, response) => {
    const room = request.params.room;
    const text = request.body?.text;
    if (!ROOM_NAME.test(room) || typeof text !== 'string' || text.length > 2000) {
      response.status(400).json({ error: 'expected a room name and { "text": string }' });
      return;
    }
    await wss.to(room).send(JSON.stringify({ type: 'message', room, from: 'http', text }));
    response.status(202).json({ sent: true });
  });

  // ws://host/ws?room=name joins that room (default "lobby"); what a client sends goes to its room.
  wss.on('connection', async (client, request) => {
    const asked = new URL(request.url ?? '/', 'http://localhost').searchParams.get('room');
    const room = asked !== null && ROOM_NAME.test(asked) ? asked : 'lobby';
    client.on('message', (text, isBinary) => {
      if (isBinary || typeof text !== 'string' || text.length > 2000) return;
      void wss.to(room).send(JSON.stringify({ type: 'message', room, from: client.id, text }));
    });
    await client.join(room);
    client.send(JSON.stringify({ type: 'welcome', id: client.id, node: wss.nodeId, room }));
  });
  wss.on('error', (error) => console.error('[wscale]', error.message));

  return { app, server, wss };
}
