// Runs the built ESM bundle with the runtime's own WebSocket (WHATWG, as in browsers) against the
// fixture server whose URL is argv[3], and prints what happened as JSON.
const [, , bundle, url] = process.argv;
const { createClient } = await import(bundle);

const client = createClient(url, { pingIntervalMs: 0 });
const states = [];
client.on('state', (state) => states.push(state));
const message = new Promise((resolve) =>
  client.on('message', (data, meta) => resolve({ data, meta })),
);
await client.join('smoke');
const text = await client.request('hello');
const binary = await client.request(new Uint8Array([1, 2, 3]));
client.send('trigger');
const received = await message;
await client.close();
console.log(
  JSON.stringify({
    states,
    rooms: client.rooms,
    text,
    binary: [binary instanceof Uint8Array, ...binary],
    received: [received.data instanceof Uint8Array, ...received.data, received.meta],
  }),
);
