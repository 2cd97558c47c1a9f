import { BaseBroker } from '../adapters/base-broker.js';
import type { Broker } from '../contracts.js';
import { ServerClosedError } from '../errors.js';
import type { Answer, Query } from '../mesh/bus-codec.js';
import type { Answerer, MeshAnswers, NodeMesh } from '../mesh/node-mesh.js';
import type { ClientInfo, NodeStats, ServerStats } from '../ops/node-stats.js';
import type { Reporter } from '../ops/reporter.js';
import type { Traffic } from '../ops/traffic.js';
import { isInbox } from '../protocol/messages.js';
import type { RoomRegistry } from '../rooms/room-registry.js';
import type { AnyClient } from '../transport/client.js';
import { checkName } from '../util/arguments.js';
import type { QueryOptions } from './server-types.js';

/** The connections' counters, as the node's stats show them. */
export interface ConnectionCounters {
  readonly counters: { readonly dropped: number; readonly slowConsumersClosed: number };
  readonly subscriptions: number;
  readonly compressed: number;
}

/**
 * What the node knows of itself and asks of the others: its stats, its answers to other nodes'
 * questions, and the cluster-wide questions (rooms, clients, stats) with partial answers.
 */
export class Queries implements Answerer {
  readonly #mesh: NodeMesh;
  readonly #broker: Broker;
  readonly #clients: ReadonlyMap<string, AnyClient>;
  readonly #rooms: RoomRegistry<AnyClient>;
  readonly #connections: ConnectionCounters;
  readonly #traffic: Traffic;
  readonly #reporter: Reporter;
  readonly #timeoutMs: number;
  #draining = false;

  constructor(
    mesh: NodeMesh,
    broker: Broker,
    clients: ReadonlyMap<string, AnyClient>,
    rooms: RoomRegistry<AnyClient>,
    connections: ConnectionCounters,
    traffic: Traffic,
    reporter: Reporter,
    /** How long a question waits for the other nodes, by default. */
    timeoutMs: number,
  ) {
    this.#mesh = mesh;
    this.#broker = broker;
    this.#clients = clients;
    this.#rooms = rooms;
    this.#connections = connections;
    this.#traffic = traffic;
    this.#reporter = reporter;
    this.#timeoutMs = timeoutMs;
  }

  /** From now on questions fail with `ServerClosedError`: the node is draining. */
  drain(): void {
    this.#draining = true;
  }

  /** Counters of this node. */
  stats(): ServerStats {
    return {
      connections: this.#clients.size,
      ...this.#connections.counters,
      limited: { ...this.#reporter.limited },
      violations: { ...this.#reporter.violations },
      rooms: this.#roomNames().length,
      subscriptions: this.#connections.subscriptions,
      ...this.#traffic.snapshot(),
      failedSends: this.#reporter.sends.failed,
      brokerQueue: this.#broker instanceof BaseBroker ? this.#broker.queued : 0,
      compressed: this.#connections.compressed,
    };
  }

  answer(query: Query): Answer {
    switch (query.q) {
      case 'rooms':
        return { q: 'rooms', a: this.#roomNames() };
      case 'clients':
        return { q: 'clients', a: this.#localClients(query.a) };
      case 'stats':
        return { q: 'stats', a: this.#nodeStats() };
    }
  }

  /** Every room with members anywhere in the cluster (see `ScaledWebSocketServer.fetchRooms`). */
  async fetchRooms(options?: QueryOptions): Promise<{ rooms: string[]; missing: string[] }> {
    const { answers, missing } = await this.#ask({ q: 'rooms' }, options);
    const rooms = new Set(this.#roomNames());
    for (const answer of answers.values()) {
      if (answer.q === 'rooms') for (const room of answer.a) rooms.add(room);
    }
    return { rooms: [...rooms].sort(), missing };
  }

  /** Clients of a room, or every client, anywhere in the cluster. */
  async fetchClients(
    room?: string,
    options?: QueryOptions,
  ): Promise<{ clients: ClientInfo[]; missing: string[] }> {
    if (room !== undefined) checkName(room, 'room');
    const { answers, missing } = await this.#ask({ q: 'clients', a: room }, options);
    const clients = this.#localClients(room);
    for (const answer of answers.values()) if (answer.q === 'clients') clients.push(...answer.a);
    return { clients, missing };
  }

  /** Every node's view of itself, this node's first. */
  async fetchStats(options?: QueryOptions): Promise<{ nodes: NodeStats[]; missing: string[] }> {
    const { answers, missing } = await this.#ask({ q: 'stats' }, options);
    const nodes = [this.#nodeStats()];
    for (const answer of answers.values()) if (answer.q === 'stats') nodes.push(answer.a);
    return { nodes, missing };
  }

  #nodeStats(): NodeStats {
    return {
      nodeId: this.#mesh.nodeId,
      at: Date.now(),
      broker: this.#broker.status,
      stats: this.stats(),
      recentResumes: [...this.#traffic.recentResumes],
    };
  }

  #localClients(room: string | undefined): ClientInfo[] {
    const clients = room === undefined ? this.#clients.values() : this.#rooms.members(room);
    return [...clients].map((client) => ({
      id: client.id,
      nodeId: this.#mesh.nodeId,
      rooms: [...client.rooms],
    }));
  }

  /** The application's rooms with local members (not the sessions' direct-message streams). */
  #roomNames(): string[] {
    return this.#rooms.names().filter((room) => !isInbox(room));
  }

  async #ask(query: Query, options?: QueryOptions): Promise<MeshAnswers> {
    if (this.#draining) throw new ServerClosedError();
    const started = performance.now();
    const answers = await this.#mesh.request(query, options?.timeoutMs ?? this.#timeoutMs);
    this.#traffic.queried(performance.now() - started, answers.missing.length);
    if (answers.missing.length > 0) {
      const fields = { missing: answers.missing };
      this.#reporter.log.write('warn', `partial answer to ${query.q}`, fields);
    }
    return answers;
  }
}
