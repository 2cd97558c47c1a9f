// @ts-check
import { Publisher } from '@wscale/core';
import express from 'express';

const ROOM_NAME = /^[\w:-]{1,64}$/;

/**
 * An HTTP service of its own — no WebSocket here — that publishes to the clients of a wscale
 * cluster: a room broadcast, or a message to one client, through the nodes' broker. The nodes run
 * elsewhere; clients cannot tell these messages from a node's.
 *
 * @param {import('@wscale/core').PublisherOptions} options the nodes' broker (and history rules)
 * @returns {{ app: import('express').Express, publisher: Publisher }}
 */
export function createApp(options) {
  const publisher = new Publisher(options);
  const app = express();
  app.use(express.json({ limit: '16kb' }));

  // POST /rooms/:room/messages { "text": "…" } → every member of the room, on every node.
  app.post('/rooms/:room/messages', async (request, response) => {
    const { room } = request.params;
    const text = request.body?.text;
    if (!ROOM_NAME.test(room) || typeof text !== 'string' || text.length > 2000) {
      response.status(400).json({ error: 'expected a room name and { "text": string }' });
      return;
    }
    await publisher.to(room).send(JSON.stringify({ type: 'message', room, from: 'http', text }));
    response.status(202).json({ sent: true });
  });

  // POST /clients/:id/messages { "text": "…" } → that one client, on whatever node holds it.
  app.post('/clients/:id/messages', async (request, response) => {
    const text = request.body?.text;
    if (typeof text !== 'string' || text.length > 2000) {
      response.status(400).json({ error: 'expected { "text": string }' });
      return;
    }
    await publisher.client(request.params.id).send(JSON.stringify({ type: 'notice', text }));
    response.status(202).json({ sent: true });
  });

  return { app, publisher };
}
