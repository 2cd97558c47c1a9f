import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isReady, Peer, type ReadyMessage } from '../ipc.js';
import { CONFIG_ENV, type NodeConfig, type ServerCounts } from '../servers/config.js';
import type { ProcessSample } from '../servers/process-stats.js';
import type { Implementation } from './implementations.js';
import type { Launcher, Processes, Started } from './processes.js';

const NODE_MAIN = fileURLToPath(new URL('./servers/node-main.js', import.meta.url));
const CLUSTER_PRIMARY = fileURLToPath(new URL('./servers/cluster-primary.js', import.meta.url));

/** The node processes of one implementation, started for one round. */
export interface NodeGroup {
  /** One WebSocket URL per node. */
  urls: string[];
  pids: number[];
  /**
   * Each node's own sample (CPU time, memory), or only those of the nodes listed; each answer
   * bounded by `timeoutMs` (10 s).
   */
  sample(op?: 'sample' | 'settle', only?: number[], timeoutMs?: number): Promise<ProcessSample[]>;
  /** SIGKILLs one node's process (not a node:cluster worker), as a crash would. */
  kill(node: number): Promise<void>;
  /** Drops up to `limit` `wscale.v1` connections of one node; resolves with how many. */
  dropClients(node: number, limit: number): Promise<number>;
  /** Each node's clients and rooms (wscale only). */
  counts(): Promise<ServerCounts[]>;
  /** Writes a heap snapshot of each node: `<prefix>-node<i>.heapsnapshot`. */
  heapSnapshot(prefix: string): Promise<string[]>;
  /**
   * Starts profiling the running nodes (see {@link NodeGroupOptions.profiler}) into
   * `<prefix>-node<i>.cpuprofile` per node (V8) or one `<prefix>.perf.data` for all (`perf`).
   */
  profileStart(prefix: string): Promise<void>;
  /** Stops profiling; resolves with what was written. */
  profileStop(): Promise<string[]>;
  /** The node:cluster primary's sample (the broker of `wscale-cluster`). */
  primary?: () => Promise<ProcessSample>;
  stop(): Promise<void>;
}

export interface NodeGroupOptions {
  implementation: Implementation;
  nodes: number;
  redisUrl?: string;
  natsUrl?: string;
  execArgv: string[];
  timeoutMs: number;
  /** With a shared state store and a history for the room (the churn scenario). */
  resumable?: boolean;
  /** What `profileStart` starts: the V8 CPU profiler in each node (default), or Linux `perf`. */
  profiler?: Profiler;
  /** What the node processes run under (see {@link Processes.fork}); none by default. */
  launcher?: Launcher;
}

/**
 * `v8`: the V8 CPU profiler in each node process. `perf`: `perf record` of the node processes
 * from outside, kernel and native code included; the nodes then write `/tmp/perf-<pid>.map`
 * (`--perf-basic-prof-only-functions`) so that it names their JavaScript functions.
 */
export type Profiler = 'v8' | 'perf';

/** Samples per second of `perf record`: fine enough for a path of a few µs per call. */
const PERF_HZ = 4000;

interface Member {
  started: Started;
  peer: Peer;
  /** The worker index for a cluster primary's members. */
  node?: number;
}

/** Starts the nodes (one process each, or a node:cluster primary and its workers). */
export async function startNodes(
  processes: Processes,
  options: NodeGroupOptions,
): Promise<NodeGroup> {
  const { implementation } = options;
  const perf = options.profiler === 'perf';
  const execArgv = perf
    ? [...options.execArgv, '--perf-basic-prof-only-functions']
    : options.execArgv;
  const count = implementation.singleNode ? 1 : options.nodes;
  const config = (node: number): NodeConfig => ({
    impl: implementation.id,
    node,
    nodes: count,
    host: '127.0.0.1',
    ...(options.resumable ? { resumable: true } : {}),
    ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }),
    ...(options.natsUrl === undefined ? {} : { natsUrl: options.natsUrl }),
  });
  const ports = new Array<number>(count);
  const pids = new Array<number>(count);
  const members: Member[] = [];
  const launched: { started: Started; peer: Peer }[] = [];
  const readies: Promise<void>[] = [];

  const expectReady = (started: Started, nodes: number[]) =>
    awaitReady(started, nodes, options.timeoutMs, (message) => {
      ports[message.node] = message.port;
      pids[message.node] = message.pid;
    });

  if (implementation.cluster) {
    const started = processes.fork(
      `${implementation.id} primary`,
      CLUSTER_PRIMARY,
      { [CONFIG_ENV]: JSON.stringify(config(-1)) },
      execArgv,
    );
    const peer = new Peer(started.child);
    launched.push({ started, peer });
    for (let node = 0; node < count; node++) members.push({ started, peer, node });
    readies.push(expectReady(started, [...Array(count).keys()]));
  } else {
    for (let node = 0; node < count; node++) {
      const started = processes.fork(
        `${implementation.id} node ${node}`,
        NODE_MAIN,
        { [CONFIG_ENV]: JSON.stringify(config(node)) },
        execArgv,
        options.launcher,
      );
      const peer = new Peer(started.child);
      launched.push({ started, peer });
      members.push({ started, peer });
      readies.push(expectReady(started, [node]));
    }
  }

  const stop = async () => {
    await Promise.all(
      launched.map(async ({ started, peer }) => {
        await peer.request('stop', undefined, 10_000).catch(() => undefined);
        await processes.reap(started, 3000);
      }),
    );
  };

  try {
    await Promise.all(readies);
  } catch (error) {
    await stop();
    throw error;
  }

  const killed = new Set<number>();
  /** The members still running, with their node index. */
  const running = () => [...members.entries()].filter(([node]) => !killed.has(node));
  let recorder: Started | undefined;
  let profilePrefix = '';
  const group: NodeGroup = {
    urls: ports.map((port) => `ws://127.0.0.1:${port}`),
    pids,
    sample: (op = 'sample', only, timeoutMs = 10_000) =>
      Promise.all(
        (only ?? [...members.keys()]).map((node) => {
          const member = members[node]!;
          return member.peer.request<ProcessSample>(op, undefined, timeoutMs, member.node);
        }),
      ),
    kill: (node) => {
      const member = members[node]!;
      if (member.node !== undefined) throw new Error('a node:cluster worker is not killed alone');
      killed.add(node);
      return processes.stop(member.started, 0, 'SIGKILL');
    },
    dropClients: (node, limit) => {
      const member = members[node]!;
      return member.peer.request<number>('dropClients', limit, 10_000, member.node);
    },
    counts: () =>
      Promise.all(
        members.map((member) =>
          member.peer.request<ServerCounts>('counts', undefined, 10_000, member.node),
        ),
      ),
    heapSnapshot: (prefix) =>
      Promise.all(
        members.map((member, i) =>
          member.peer.request<string>(
            'heapSnapshot',
            `${prefix}-node${i}.heapsnapshot`,
            120_000,
            member.node,
          ),
        ),
      ),
    profileStart: async (prefix) => {
      profilePrefix = prefix;
      mkdirSync(dirname(prefix), { recursive: true });
      if (perf) {
        const nodes = running().map(([i]) => pids[i]);
        recorder = processes.spawn(`perf record of ${implementation.id}`, 'perf', [
          ...['record', '-e', 'cpu-clock', '-F', String(PERF_HZ), '-g'],
          ...['-o', `${prefix}.perf.data`, '-p', nodes.join(',')],
        ]);
        // perf says nothing once it is attached: a short wait lets it attach before the scenario.
        await new Promise((resolve) => setTimeout(resolve, 500));
        return;
      }
      await Promise.all(
        running().map(([, member]) =>
          member.peer.request('profileStart', undefined, 10_000, member.node),
        ),
      );
    },
    // A killed node has no profile to give.
    profileStop: async () => {
      if (recorder !== undefined) {
        const stopped = recorder;
        recorder = undefined;
        // On SIGINT perf writes out what it recorded and exits.
        await processes.stop(stopped, 30_000, 'SIGINT');
        const file = `${profilePrefix}.perf.data`;
        if (!existsSync(file)) throw new Error(`perf recorded nothing: ${stopped.output().trim()}`);
        const nodes = pids.map((pid, i) => `node ${i}: pid ${pid}`).join(', ');
        return [`${file} (${nodes})`];
      }
      return Promise.all(
        running().map(([i, member]) =>
          member.peer.request<string>(
            'profileStop',
            `${profilePrefix}-node${i}.cpuprofile`,
            30_000,
            member.node,
          ),
        ),
      );
    },
    stop,
  };
  if (implementation.cluster) {
    const peer = members[0]!.peer;
    group.primary = () => peer.request<ProcessSample>('sample', undefined, 10_000);
  }
  return group;
}

/**
 * Resolves once `started` has said it is ready for each of `nodes`, handing every such message to
 * `onReady`; rejects, with the end of what it printed, if it exits first or `timeoutMs` passes.
 */
export function awaitReady(
  started: Started,
  nodes: readonly number[],
  timeoutMs: number,
  onReady: (message: ReadyMessage) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const pending = new Set(nodes);
    const timer = setTimeout(
      () => fail(new Error(`${started.name} not ready in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (message: unknown) => {
      if (!isReady(message)) return;
      onReady(message);
      pending.delete(message.node);
      if (pending.size === 0) {
        cleanup();
        resolve();
      }
    };
    const onExit = () => fail(new Error(`${started.name} exited before it was ready`));
    const fail = (error: Error) => {
      cleanup();
      reject(new Error(`${error.message}\n${started.output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      started.child.off('message', onMessage);
      started.child.off('exit', onExit);
    };
    started.child.on('message', onMessage);
    started.child.once('exit', onExit);
  });
}
