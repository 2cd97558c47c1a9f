import { parseArgs } from 'node:util';
import { HEARTBEAT_MS } from '../servers/config.js';

/** The sizes of a run. */
export interface Sizes {
  /** Rounds: every implementation runs once per round, in a rotating order. */
  rounds: number;
  /** Node processes per implementation (the memory broker always runs one). */
  nodes: number;
  /** Clients in the room, spread round-robin over the nodes. */
  clients: number;
  /** Fixed-rate broadcast: messages and messages per second. */
  messages: number;
  rate: number;
  /** Broadcast at the publisher's top speed: messages. */
  maxMessages: number;
  /** Direct messages to clients on other nodes: count and rate. */
  directMessages: number;
  directRate: number;
  /**
   * Connections of the one-node scenario (idle memory, connect rate, and a broadcast to all of
   * them in one room).
   */
  idleClients: number;
  /**
   * Broadcast to the one-node scenario's room: messages and messages per second (absent in
   * results written before it existed).
   */
  bigRoomMessages?: number;
  bigRoomRate?: number;
  /** `wscale.v1` clients of the churn scenario, and messages published while some are away. */
  churnClients: number;
  churnMessages: number;
  /** Client lives of the churn soak. */
  soakCycles: number;
  /**
   * Node counts of the direct-scaling scenario (direct messages as nodes are added). Absent in
   * results written before it existed.
   */
  scaleNodes?: number[];
  /**
   * Broadcasts of the scaling scenario at each node count, at `rate` per second (absent in results
   * written before it broadcast).
   */
  scaleMessages?: number;
  /**
   * `wscale.v1` clients of the resume storm (over 3 nodes, one of which is killed), and messages
   * published while the killed node's clients are away (absent in results written before it).
   */
  stormClients?: number;
  stormMessages?: number;
  /**
   * Most connections across nodes (absent in results written before it): node processes, the
   * ceiling of clients in all (lowered to what each node's open-files limit allows), clients
   * opened per step, clients per load-generator process, and a bound on the ramp's time (s);
   * then broadcasts to all of them, at `capacityRate` per second.
   */
  capacityNodes?: number;
  capacityMax?: number;
  capacityStep?: number;
  capacityPerLoad?: number;
  capacitySeconds?: number;
  capacityMessages?: number;
  capacityRate?: number;
  /**
   * How long the held clients idle before their nodes' memory is sampled: one heartbeat and a
   * margin, so every socket has answered a ping (see `pingEvery`), as on a server that has run a while.
   */
  capacityIdleMs?: number;
  /** Payload bytes. */
  size: number;
  /** Warm-up broadcasts before measuring (the one-node, churn and storm scenarios). */
  warmup: number;
  /**
   * Warm-up broadcasts of the fan-out and scaling scenarios (absent in results written before
   * it: `warmup` then): enough that the per-message path runs optimized, as on a server that has
   * run a while, when the fixed-rate phase (a message every 50 ms) starts.
   */
  fanoutWarmup?: number;
  /**
   * Direct messages sent, unmeasured, before each direct phase, at `directRate`: the phase then
   * measures a server whose direct path is compiled, as a server that has run a while is, not
   * V8 compiling it (absent in results written before it: those phases measured it cold).
   */
  directWarmup?: number;
  /** After the last send, stop waiting once nothing arrived for this long (ms). */
  quietMs: number;
  /** After the last send, stop waiting after this long in any case (ms). */
  drainMs: number;
}

export const DEFAULT_SIZES: Sizes = {
  rounds: 3,
  nodes: 2,
  clients: 1000,
  messages: 200,
  rate: 20,
  maxMessages: 500,
  directMessages: 2000,
  directRate: 1000,
  idleClients: 10_000,
  bigRoomMessages: 20,
  bigRoomRate: 2,
  churnClients: 1000,
  churnMessages: 20,
  soakCycles: 5000,
  scaleNodes: [2, 4, 8],
  scaleMessages: 100,
  stormClients: 10_000,
  stormMessages: 20,
  capacityNodes: 3,
  capacityMax: 60_000,
  capacityStep: 2000,
  capacityPerLoad: 15_000,
  capacitySeconds: 300,
  capacityMessages: 5,
  capacityRate: 1,
  capacityIdleMs: HEARTBEAT_MS + 2000,
  size: 64,
  warmup: 20,
  fanoutWarmup: 400,
  directWarmup: 3000,
  quietMs: 3000,
  drainMs: 30_000,
};

export const SMOKE_SIZES: Sizes = {
  rounds: 1,
  nodes: 2,
  clients: 20,
  messages: 20,
  rate: 100,
  maxMessages: 20,
  directMessages: 20,
  directRate: 200,
  idleClients: 50,
  bigRoomMessages: 5,
  bigRoomRate: 20,
  churnClients: 20,
  churnMessages: 5,
  soakCycles: 60,
  scaleNodes: [2, 3],
  scaleMessages: 10,
  stormClients: 30,
  stormMessages: 5,
  // Two load processes of 30 clients each: the smoke run goes through the split too.
  capacityNodes: 3,
  capacityMax: 60,
  capacityStep: 30,
  capacityPerLoad: 30,
  capacitySeconds: 60,
  capacityMessages: 3,
  capacityRate: 10,
  capacityIdleMs: 0,
  size: 64,
  warmup: 5,
  fanoutWarmup: 10,
  directWarmup: 10,
  quietMs: 2000,
  drainMs: 10_000,
};

export interface RunOptions {
  sizes: Sizes;
  smoke: boolean;
  /** Implementation ids to run (default: all that are available). */
  only: string[] | undefined;
  /** Where the results go: `<out>/benchmarks.md` and `<out>/benchmarks/`. */
  out: string;
  /** Profile (V8 CPU profiler, per scenario) the server processes of these implementations. */
  profile: string[];
  /**
   * Record the server processes of these implementations with Linux `perf`, per scenario: the
   * kernel's and the native code's share too, which the V8 profiler does not see.
   */
  perf: string[];
  /** Stop the whole run after this long (ms). */
  budgetMs: number;
  verbose: boolean;
  skipIdle: boolean;
  skipFanout: boolean;
  skipChurn: boolean;
  skipSoak: boolean;
  skipScale: boolean;
  /** Skip the broadcast phase of the scaling scenario (its direct phase still runs). */
  skipScaleFanout: boolean;
  /** Skip the broadcast to the one-node scenario's room (its memory and connect rate still run). */
  skipBigRoom: boolean;
  skipStorm: boolean;
  /** Skip "most connections across nodes", or only its broadcast. */
  skipCapacity: boolean;
  skipCapacityFanout: boolean;
  skipCompression: boolean;
  /** Only write the report again from this `results.json` (after editing ANALYSIS.md). */
  reportFrom: string | undefined;
}

const USAGE = `usage: bench [--smoke] [--only id,id] [--rounds N] [--nodes K] [--clients C]
  [--messages M] [--rate R] [--max-messages M] [--direct-messages M] [--direct-rate R]
  [--warmup M] [--fanout-warmup M] [--direct-warmup M]
  [--idle-clients C] [--size BYTES] [--out DIR] [--profile id,id] [--perf id,id]
  [--budget-minutes N]
  [--churn-clients C] [--churn-messages M] [--soak-cycles N] [--scale-nodes 2,4,8]
  [--scale-messages M] [--big-room-messages M] [--big-room-rate R]
  [--storm-clients C] [--storm-messages M]
  [--capacity-nodes K] [--capacity-max C] [--capacity-step C] [--capacity-per-load C]
  [--capacity-seconds S] [--capacity-messages M] [--capacity-rate R]
  [--no-idle] [--no-fanout] [--no-churn] [--no-soak] [--no-scale] [--no-scale-fanout]
  [--no-big-room] [--no-storm] [--no-capacity] [--no-capacity-fanout] [--no-compression]
  [--verbose]
  bench --report-from docs/benchmarks/results.json   (rewrite the report only)`;

/** Reads the command line. */
export function parseOptions(argv: string[], defaultOut: string): RunOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      rounds: { type: 'string' },
      nodes: { type: 'string' },
      clients: { type: 'string' },
      messages: { type: 'string' },
      rate: { type: 'string' },
      'max-messages': { type: 'string' },
      'direct-messages': { type: 'string' },
      'direct-rate': { type: 'string' },
      warmup: { type: 'string' },
      'fanout-warmup': { type: 'string' },
      'direct-warmup': { type: 'string' },
      'idle-clients': { type: 'string' },
      size: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'string' },
      perf: { type: 'string' },
      'budget-minutes': { type: 'string' },
      'no-idle': { type: 'boolean', default: false },
      'no-fanout': { type: 'boolean', default: false },
      'no-churn': { type: 'boolean', default: false },
      'no-soak': { type: 'boolean', default: false },
      'soak-cycles': { type: 'string' },
      'no-scale': { type: 'boolean', default: false },
      'no-compression': { type: 'boolean', default: false },
      'scale-nodes': { type: 'string' },
      'scale-messages': { type: 'string' },
      'no-scale-fanout': { type: 'boolean', default: false },
      'big-room-messages': { type: 'string' },
      'big-room-rate': { type: 'string' },
      'no-big-room': { type: 'boolean', default: false },
      'storm-clients': { type: 'string' },
      'storm-messages': { type: 'string' },
      'no-storm': { type: 'boolean', default: false },
      'capacity-nodes': { type: 'string' },
      'capacity-max': { type: 'string' },
      'capacity-step': { type: 'string' },
      'capacity-per-load': { type: 'string' },
      'capacity-seconds': { type: 'string' },
      'capacity-messages': { type: 'string' },
      'capacity-rate': { type: 'string' },
      'no-capacity': { type: 'boolean', default: false },
      'no-capacity-fanout': { type: 'boolean', default: false },
      'churn-clients': { type: 'string' },
      'churn-messages': { type: 'string' },
      'report-from': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const sizes = { ...(values.smoke ? SMOKE_SIZES : DEFAULT_SIZES) };
  const number = (name: string, value: string | undefined, min: number): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min) throw new Error(`--${name} must be >= ${min}`);
    return parsed;
  };
  const set = (key: Exclude<keyof Sizes, 'scaleNodes'>, name: string, min: number) => {
    const value = number(name, values[name as keyof typeof values] as string | undefined, min);
    if (value !== undefined) sizes[key] = value;
  };
  set('rounds', 'rounds', 1);
  set('nodes', 'nodes', 1);
  set('clients', 'clients', 1);
  set('messages', 'messages', 1);
  set('rate', 'rate', 1);
  set('maxMessages', 'max-messages', 1);
  set('directMessages', 'direct-messages', 1);
  set('directRate', 'direct-rate', 1);
  set('warmup', 'warmup', 1);
  set('fanoutWarmup', 'fanout-warmup', 0);
  set('directWarmup', 'direct-warmup', 0);
  set('idleClients', 'idle-clients', 1);
  set('size', 'size', 16);
  set('churnClients', 'churn-clients', 1);
  set('churnMessages', 'churn-messages', 1);
  set('soakCycles', 'soak-cycles', 10);
  set('scaleMessages', 'scale-messages', 1);
  set('bigRoomMessages', 'big-room-messages', 1);
  set('bigRoomRate', 'big-room-rate', 1);
  set('stormClients', 'storm-clients', 3);
  set('stormMessages', 'storm-messages', 1);
  set('capacityNodes', 'capacity-nodes', 1);
  set('capacityMax', 'capacity-max', 1);
  set('capacityStep', 'capacity-step', 1);
  set('capacityPerLoad', 'capacity-per-load', 1);
  set('capacitySeconds', 'capacity-seconds', 1);
  set('capacityMessages', 'capacity-messages', 1);
  set('capacityRate', 'capacity-rate', 1);
  const list = (value: string | undefined) =>
    value === undefined
      ? undefined
      : value
          .split(',')
          .map((item) => item.trim())
          .filter(Boolean);
  const scaleNodes = list(values['scale-nodes'])?.map((item) => number('scale-nodes', item, 2)!);
  if (scaleNodes !== undefined) sizes.scaleNodes = scaleNodes;
  const profile = list(values.profile) ?? [];
  const perf = list(values.perf) ?? [];
  const both = perf.find((id) => profile.includes(id));
  if (both !== undefined) throw new Error(`${both} is profiled with --profile or --perf, not both`);
  return {
    sizes,
    smoke: values.smoke ?? false,
    only: list(values.only),
    out: values.out ?? defaultOut,
    profile,
    perf,
    budgetMs: (number('budget-minutes', values['budget-minutes'], 1) ?? 40) * 60_000,
    verbose: values.verbose ?? false,
    skipIdle: values['no-idle'] ?? false,
    skipFanout: values['no-fanout'] ?? false,
    skipChurn: values['no-churn'] ?? false,
    skipSoak: values['no-soak'] ?? false,
    skipScale: values['no-scale'] ?? false,
    skipScaleFanout: values['no-scale-fanout'] ?? false,
    skipBigRoom: values['no-big-room'] ?? false,
    skipStorm: values['no-storm'] ?? false,
    skipCapacity: values['no-capacity'] ?? false,
    skipCapacityFanout: values['no-capacity-fanout'] ?? false,
    skipCompression: values['no-compression'] ?? false,
    reportFrom: values['report-from'],
  };
}
