// @ts-check
// wscale on an Express app. Run `pnpm --filter @wscale/example-express start`; PORT picks the port
// (default 3000).
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { server, wss, shutDown } = createApp();
// How long the load balancer takes to see /readyz fail (its check interval × failures, plus margin).
const drainDelayMs = Number(process.env.DRAIN_DELAY_MS ?? 5000);

await wss.ready();
server.listen(port, () => {
  console.log(`express + wscale on http://localhost:${port}  (node ${wss.nodeId})`);
  console.log(`  GET  /livez  /readyz  /metrics  /api/rooms`);
  console.log(`  POST /api/rooms/:room/messages  {"text":"…"}`);
  console.log(`  ws://localhost:${port}/ws?room=lobby`);
});

// Drain on SIGTERM (a deploy) or Ctrl-C: readiness fails first, then clients are closed with 1012
// and reconnect elsewhere.
process.once('SIGTERM', () => void shutDown(drainDelayMs));
process.once('SIGINT', () => void shutDown(0));
