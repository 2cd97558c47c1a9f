// @ts-check
// A plain WebSocket page on wscale in raw mode. Run `pnpm --filter @wscale/example-raw start`, then
// open the printed URL in two tabs. PORT picks the port (default 3000).
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const { server, wss } = await createApp();

await wss.ready();
server.listen(port, () => console.log(`raw WebSocket page: http://localhost:${port}`));

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, async () => {
    await wss.close(); // clients get 1012 and reconnect (the page does)
    server.close();
  });
}
