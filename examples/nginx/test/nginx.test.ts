import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startStack } from '../src/stack.js';
import { V1Client } from './helpers/v1-client.js';

const ROOM = 'chat:lobby';

const missing = ['nginx', 'redis-server'].filter(
  (binary) => spawnSync(binary, ['-v'], { stdio: 'ignore' }).status !== 0,
);
if (missing.length > 0 && process.env.WSCALE_REQUIRE_SERVICES === '1') {
  throw new Error(`WSCALE_REQUIRE_SERVICES=1 but ${missing.join(', ')} cannot be run`);
}

describe.skipIf(missing.length > 0)('examples/nginx: nginx in front of three nodes', () => {
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  const logs: string[] = [];
  const clients: V1Client[] = [];

  beforeAll(async () => {
    stack = await startStack({ log: (line) => logs.push(line) });
  });

  afterEach(({ task }) => {
    // What every process printed, to see why a scenario failed.
    if (task.result?.state === 'fail') console.error(logs.join('\n'));
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await stack?.stop();
  });

  it('spreads connections over every node, and a broadcast from one reaches all', async () => {
    for (let i = 0; i < 6; i++) clients.push(await V1Client.connect(stack!.wsUrl));
    expect(new Set(clients.map((client) => client.node))).toEqual(
      new Set(['node-1', 'node-2', 'node-3']),
    );
    await Promise.all(
      clients.map((client) => client.next((f) => f.t === 'joined' && f.r === ROOM)),
    );

    clients[0]!.say('hello everyone');
    await Promise.all(clients.map((client) => client.heard(ROOM, 'hello everyone')));
  });

  it('the clients of a killed node resume on others through it and miss nothing', async () => {
    const publisher = clients[0]!;
    const victim = stack!.nodes.find((node) => node.id !== publisher.node)!;
    const orphans = clients.filter((client) => client.node === victim.id);
    const survivors = clients.filter((client) => client.node !== victim.id);
    expect(orphans.length).toBeGreaterThan(0);

    await victim.kill(); // SIGKILL: no drain, no close frames
    for (const code of await Promise.all(orphans.map((client) => client.closed))) {
      expect(code).toBe(1006);
    }
    publisher.say('while they were away');
    await Promise.all(survivors.map((client) => client.heard(ROOM, 'while they were away')));

    // Reconnect through the balancer, which still lists the dead node for a moment and retries.
    const resumed = await Promise.all(
      orphans.map((orphan) =>
        V1Client.connect(stack!.wsUrl, {
          session: String(orphan.welcome.session),
          positions: orphan.positions,
        }),
      ),
    );
    resumed.forEach((client, i) => {
      expect(client.node).not.toBe(victim.id);
      expect(client.welcome).toMatchObject({
        resumed: true,
        client: orphans[i]!.welcome.client,
        rooms: { [ROOM]: { recovered: true } },
      });
    });
    await Promise.all(resumed.map((client) => client.heard(ROOM, 'while they were away')));
    clients.push(...resumed);

    publisher.say('after the crash');
    await Promise.all(
      [...survivors, ...resumed].map((client) => client.heard(ROOM, 'after the crash')),
    );
    for (const client of resumed) {
      expect(client.texts(ROOM)).toEqual(['while they were away', 'after the crash']);
    }
  }, 30_000);
});
