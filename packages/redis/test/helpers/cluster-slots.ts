import type { RedisClusterFixture, RedisServer } from '@wscale/test-support';

/** The master that owns `channel`'s slot, as `via` (a live server of the cluster) sees it. */
export async function slotOwner(
  cluster: RedisClusterFixture,
  channel: string,
  via: RedisServer = cluster.servers[0]!,
): Promise<RedisServer> {
  const slot = Number(await via.cli('cluster', 'keyslot', channel));
  const port = findOwnerPort(await via.cli('cluster', 'shards'), slot);
  return cluster.servers.find((server) => server.port === port)!;
}

/** The master that owns `channel`'s slot, and another master. */
export async function ownerAndOther(cluster: RedisClusterFixture, channel: string) {
  const source = await slotOwner(cluster, channel);
  const target = cluster.servers.find((server) => server !== source)!;
  return [source, target] as const;
}

/** Moves the (key-less) slot of `channel` from `source` to `target`, as resharding does. */
export async function moveSlot(
  cluster: RedisClusterFixture,
  channel: string,
  source: RedisServer,
  target: RedisServer,
) {
  const slot = await source.cli('cluster', 'keyslot', channel);
  const [sourceId, targetId] = [
    await source.cli('cluster', 'myid'),
    await target.cli('cluster', 'myid'),
  ];
  await target.cli('cluster', 'setslot', slot, 'importing', sourceId);
  await source.cli('cluster', 'setslot', slot, 'migrating', targetId);
  await target.cli('cluster', 'setslot', slot, 'node', targetId);
  await source.cli('cluster', 'setslot', slot, 'node', targetId);
  for (const server of cluster.servers)
    await server.cli('cluster', 'setslot', slot, 'node', targetId);
}

/** Reads `CLUSTER SHARDS` (redis-cli's flat output) to find the port of the master of `slot`. */
function findOwnerPort(shards: string, slot: number): number {
  const lines = shards.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== 'slots') continue;
    const ranges: number[] = [];
    let j = i + 1;
    while (/^\d+$/.test(lines[j] ?? '')) ranges.push(Number(lines[j++]));
    const owns = ranges.some((_, k) => k % 2 === 0 && slot >= ranges[k]! && slot <= ranges[k + 1]!);
    if (!owns) continue;
    const port = lines.indexOf('port', j);
    return Number(lines[port + 1]);
  }
  throw new Error(`no shard owns slot ${slot}`);
}
