// @ts-check
// The publishing service: `REDIS_URL=redis://127.0.0.1:6379 PORT=3001 node src/server.js`, beside
// wscale nodes on the same Redis (for example the chat demo with REDIS_URL set).
import { RedisBroker, RedisHistory, RedisStateStore } from '@wscale/redis';
import { createApp } from './app.js';

const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const broker = new RedisBroker({ redis });
// The nodes' history rules (here the chat demo's): what is published to a room that keeps history
// is appended to it first, so a client resuming meanwhile recovers it.
const history = new RedisHistory({ redis, maxEntries: 500 });
// The nodes' session store: a join, leave or close for a client between two connections is kept
// in its session, and made when it comes back.
const stateStore = new RedisStateStore({ redis });
const { app } = createApp({ broker, history: [{ rooms: 'chat:*', store: history }], stateStore });
const server = app.listen(Number(process.env.PORT ?? 3001), () => {
  console.log(`publishing service on http://127.0.0.1:${process.env.PORT ?? 3001}/`);
});
process.once('SIGTERM', async () => {
  server.close();
  await Promise.all([broker.close(), history.close(), stateStore.close()]);
  process.exit(0);
});
