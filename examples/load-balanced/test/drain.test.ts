import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Child } from '../src/child.js';
import { freePort } from '../src/stack.js';

const NODE_SCRIPT = fileURLToPath(new URL('../src/node.js', import.meta.url));
/** Short for the test; long enough that "still connected during the delay" is not a race. */
const DRAIN_DELAY_MS = 1500;

const redisMissing = spawnSync('redis-server', ['-v'], { stdio: 'ignore' }).status !== 0;
if (redisMissing && process.env.WSCALE_REQUIRE_SERVICES === '1') {
  throw new Error('WSCALE_REQUIRE_SERVICES=1 but redis-server cannot be run');
}

/** The status of GET /health. */
function health(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${port}/health`, (response) => {
      response.resume();
      resolve(response.statusCode);
    }).on('error', reject);
  });
}

/**
 * What the HAProxy and nginx READMEs promise of a node that receives SIGTERM (a rolling deploy):
 * it first answers 503 on /health so the load balancer takes it out, keeps serving its clients
 * while the load balancer notices, and only then drains, closing them with 1012.
 */
describe.skipIf(redisMissing)('a node of the example on SIGTERM', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wscale-drain-'));
  const log: string[] = [];
  const children: Child[] = [];
  let redisUrl = '';
  beforeAll(async () => {
    const port = await freePort();
    const redis = new Child('redis', 'redis', 'redis-server', (line) => log.push(line), {
      args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      cwd: dir,
    });
    children.push(redis);
    await redis.waitForLine(/Ready to accept connections/, 10_000);
    redisUrl = `redis://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    for (const child of children.reverse()) await child.stop('SIGKILL', 0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails its health check first, keeps its clients for the delay, then closes them with 1012', async () => {
    const node = new Child('node', 'node', process.execPath, (line) => log.push(line), {
      args: [NODE_SCRIPT],
      env: {
        NODE_ID: 'node-1',
        PORT: '0',
        REDIS_URL: redisUrl,
        SESSION_SECRET: 'a-test-secret-of-enough-bytes',
        DRAIN_DELAY_MS: String(DRAIN_DELAY_MS),
      },
    });
    children.push(node);
    const port = Number((await node.waitForLine(/^ready \S+ (\d+)$/, 20_000))[1]);
    expect(await health(port)).toBe(200);

    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const welcomed = new Promise((resolve) => ws.once('message', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    await welcomed;

    const draining = node.waitForLine(/SIGTERM: draining/, 5000);
    process.kill(node.pid!, 'SIGTERM');
    await draining;
    expect(await health(port)).toBe(503);
    expect(ws.readyState).toBe(WebSocket.OPEN); // the load balancer has time to notice

    expect(await closed).toBe(1012);
  }, 30_000);
});
