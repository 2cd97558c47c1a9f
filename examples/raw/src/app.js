// @ts-check
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { ScaledWebSocketServer } from '@wscale/core';

const ROOM_NAME = /^[\w-]{1,64}$/;
const MAX_ROOMS = 16;

/**
 * The raw-mode app: an HTTP server for the page and a wscale node on `/ws`. Clients speak this
 * app's own little JSON protocol (no `wscale.v1`), which any WebSocket client can:
 *
 * - `{"join":"room"}` → `{"type":"joined","room"}`; `{"leave":"room"}` → `{"type":"left","room"}`
 * - `{"to":"room","text":"…"}` → everyone in the room, on every node: `{"type":"message",…}`
 *
 * Nothing listens yet: call `server.listen()` after `await wss.ready()`.
 *
 * @param {Omit<import('@wscale/core').ServerOptions, 'port' | 'server' | 'noServer' | 'path'>} [options]
 *   more `ScaledWebSocketServer` options, e.g. a shared `broker`
 * @returns {Promise<{ server: import('node:http').Server, wss: ScaledWebSocketServer }>}
 */
export async function createApp(options = {}) {
  const page = await readFile(new URL('../public/index.html', import.meta.url));
  const server = createServer((request, response) => {
    if (request.method === 'GET' && (request.url === '/' || request.url === '/index.html')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  const wss = new ScaledWebSocketServer({ ...options, server, path: '/ws' });

  wss.on('connection', (client) => {
    /** @param {Record<string, unknown>} message */
    const reply = (message) => client.send(JSON.stringify(message));
    reply({ type: 'hello', id: client.id, node: wss.nodeId });

    client.on('message', async (data, isBinary) => {
      const request = isBinary ? undefined : parse(String(data));
      if (request === undefined) return reply({ type: 'error', error: 'expected a JSON object' });
      if (typeof request.join === 'string') {
        if (!ROOM_NAME.test(request.join)) return reply({ type: 'error', error: 'bad room name' });
        if (client.rooms.size >= MAX_ROOMS)
          return reply({ type: 'error', error: 'too many rooms' });
        await client.join(request.join);
        return reply({ type: 'joined', room: request.join });
      }
      if (typeof request.leave === 'string') {
        await client.leave(request.leave);
        return reply({ type: 'left', room: request.leave });
      }
      if (typeof request.to === 'string' && typeof request.text === 'string') {
        // This app's rule: only members speak in a room. wscale itself does not care.
        if (!client.rooms.has(request.to)) return reply({ type: 'error', error: 'join it first' });
        const text = request.text.slice(0, 2000);
        await wss
          .to(request.to)
          .send(JSON.stringify({ type: 'message', room: request.to, from: client.id, text }));
        return;
      }
      reply({ type: 'error', error: 'unknown request' });
    });
  });
  wss.on('error', (error) => console.error('[wscale]', error.message));

  return { server, wss };
}

/**
 * @param {string} text
 * @returns {Record<string, unknown> | undefined}
 */
function parse(text) {
  try {
    const value = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
