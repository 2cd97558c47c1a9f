// The server side of the upstream benchmark: one wscale node that counts what its clients send.
// Tells its parent { ready, port }; answers { sample: true } with { sample: { count, cpuMicros } }.
import { MemoryStateStore, ScaledWebSocketServer } from '@wscale/core';

const wss = new ScaledWebSocketServer({
  port: 0,
  host: '127.0.0.1',
  stateStore: new MemoryStateStore(),
  sessionSecret: 'the-upstream-benchmark-secret',
  heartbeatIntervalMs: 0,
});
let count = 0;
wss.on('connection', (client) => {
  client.on('message', () => {
    count++;
  });
});
await wss.ready();
process.send!({ ready: true, port: wss.address()!.port });

process.on('message', (message: { sample?: boolean; stop?: boolean }) => {
  if (message.sample) {
    const cpu = process.cpuUsage();
    process.send!({ sample: { count, cpuMicros: cpu.user + cpu.system } });
  }
  if (message.stop) void wss.close().then(() => process.exit(0));
});
