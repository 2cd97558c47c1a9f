// @ts-check
// The publishing service: `REDIS_URL=redis://127.0.0.1:6379 PORT=3001 node src/server.js`, beside
// wscale nodes on the same Redis (for example the chat demo with REDIS_URL set).
import { RedisBroker } from '@wscale/redis';
import { createApp } from './app.js';

const broker = new RedisBroker({ redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
const { app } = createApp({ broker });
const server = app.listen(Number(process.env.PORT ?? 3001), () => {
  console.log(`publishing service on http://127.0.0.1:${process.env.PORT ?? 3001}/`);
});
process.once('SIGTERM', async () => {
  server.close();
  await broker.close();
  process.exit(0);
});
