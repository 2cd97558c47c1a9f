// A chat room on wscale. Run `pnpm demo` from the repository root, then open the printed URL in
// two tabs. PORT picks the port (default 3000).
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { ScaledWebSocketServer } from '@wscale/core';

const port = Number(process.env.PORT ?? 3000);
const page = await readFile(new URL('./public/index.html', import.meta.url));

const http = createServer((request, response) => {
  if (request.url === '/' || request.url === '/index.html') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  } else {
    response.writeHead(404).end('not found');
  }
});

const wss = new ScaledWebSocketServer({ server: http, path: '/ws' });
wss.on('error', (error) => console.error('[chat]', error.message));
wss.on('connection', (client) => {
  void client.join('lobby');
  client.send(JSON.stringify({ type: 'welcome', node: wss.nodeId, id: client.id }));
  client.on('message', (text, isBinary) => {
    if (isBinary || typeof text !== 'string' || text.length > 2000) return;
    void wss
      .to('lobby')
      .send(JSON.stringify({ type: 'chat', from: client.id, text, node: wss.nodeId }));
  });
});

await wss.ready();
http.listen(port, () => console.log(`chat demo: http://localhost:${port}  (node ${wss.nodeId})`));

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await wss.close();
    http.close();
  });
}
