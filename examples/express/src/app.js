// @ts-check
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScaledWebSocketServer } from '@wscale/core';
import { collectMetrics } from '@wscale/prometheus';
import express from 'express';
import { Registry } from 'prom-client';

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
 *   shutDown: (delayMs: number) => Promise<void>,
 * }}
 */
export function createApp(options = {}) {
  const app = express();
  const server = createServer(app);
  // The WebSocket endpoint shares the app's port; every other path stays Express's.
  const wss = new ScaledWebSocketServer({ ...options, server, path: '/ws' });
  // A registry per app (not prom-client's global one): a test runs two apps in one process.
  const registry = collectMetrics(wss, { registry: new Registry() });
  let stopping = false;

  app.use(express.json({ limit: '16kb' }));

  // Liveness: the process answers. Never fail it for the broker or a store: restarting every
  // node because Redis is down helps nobody.
  app.get('/livez', (_request, response) => {
    response.json({ status: 'ok', node: wss.nodeId });
  });

  // Readiness: started, listening, not shutting down. It fails first in a shutdown, so the load
  // balancer stops sending new clients here before the node drains.
  app.get('/readyz', async (_request, response) => {
    const health = await wss.health();
    const ready = health.ready && !stopping;
    response.status(ready ? 200 : 503).json({ ...health, ready });
  });

  // Prometheus scrapes this (behind your own network rules or auth in production).
  app.get('/metrics', async (_request, response) => {
    response.type(registry.contentType).send(await registry.metrics());
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

  /** Readiness fails, the load balancer notices within `delayMs`, then the node drains. */
  const shutDown = async (/** @type {number} */ delayMs) => {
    stopping = true;
    await sleep(delayMs);
    await wss.close();
    server.close();
  };

  return { app, server, wss, shutDown };
}
