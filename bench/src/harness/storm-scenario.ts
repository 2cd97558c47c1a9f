import type { Implementation } from './implementations.js';
import {
  type ChurnCycle,
  churnCycle,
  connectSessions,
  type RunContext,
  withNodes,
} from './scenarios.js';

/** The resume storm's node count: one of them is killed. */
const STORM_NODES = 3;
/** The node killed; the publisher is on the last one, which survives. */
const KILLED = 0;

/** A resume storm: one node of three SIGKILLed, its clients resuming on the next node. */
export interface StormRound {
  round: number;
  nodes: number;
  clients: number;
  /** Connecting every `wscale.v1` client and joining the room (acknowledged), ms. */
  connectMs: number;
  /** Clients the killed node held. */
  killedClients: number;
  /** The storm; its node CPU is the surviving nodes'. */
  cycle: ChurnCycle;
}

/**
 * Resume storm (wscale on an external broker): `stormClients` `wscale.v1` clients in the room,
 * which keeps history, spread over three nodes; the node holding a third of them is SIGKILLed,
 * `stormMessages` are published while its clients are away, and each of them comes back on the
 * next node, resumes its session and recovers what was published. Measures, per client, the time
 * from the first drop until it is back with every message, and the broker's CPU meanwhile.
 */
export async function runStorm(
  context: RunContext,
  implementation: Implementation,
  round: number,
): Promise<StormRound> {
  const { sizes } = context;
  const clients = sizes.stormClients ?? 10_000;
  return withNodes(context, implementation, STORM_NODES, true, async (group, load) => {
    const connected = await connectSessions(context, group, load, clients);
    const killedClients = connected.perNode[KILLED]!;
    const survivors = group.pids.map((_, node) => node).filter((node) => node !== KILLED);
    const cycle = await churnCycle(context, implementation, group, load, {
      messages: sizes.stormMessages ?? 20,
      drop: async () => {
        await group.kill(KILLED);
        return killedClients;
      },
      sampled: survivors,
      timeoutMs: 180_000,
      name: 'storm',
      round,
    });
    return {
      round,
      nodes: STORM_NODES,
      clients,
      connectMs: connected.ms,
      killedClients,
      cycle,
    };
  });
}
