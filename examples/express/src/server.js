// @ts-check
// wscale on an Express app. Run `pnpm --filter @wscale/example-express start`; PORT picks the port
// (default 3000).
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { server, wss } = createApp();

await wss.ready();
server.listen(port, () => {
  console.log(`express + wscale on http://localhost:${port}  (node ${wss.nodeId})`);
  console.log(`  GET  /health             GET /api/rooms`);
  console.log(`  POST /api/rooms/:room/messages  {"text":"…"}`);
  console.log(`  ws://localhost:${port}/ws?room=lobby`);
});

// Drain on SIGTERM (a deploy) or Ctrl-C: clients are closed with 1012 and reconnect elsewhere.
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, async () => {
    await wss.close();
    server.close();
  });
}
