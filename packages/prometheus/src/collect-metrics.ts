import {
  type BrokerStatus,
  CloseCode,
  InvalidArgumentError,
  type ScaledWebSocketServer,
  type ServerStats,
} from '@wscale/core';
import { Counter, Gauge, type Registry, register } from 'prom-client';

/** Where metrics go: options of {@link collectMetrics} and of the store instrumentation. */
export interface MetricsOptions {
  /** Where the metrics are registered. @default prom-client's global `register` */
  registry?: Registry;
  /** Put before every metric's name. @default 'wscale_' */
  prefix?: string;
}

const STATUSES: BrokerStatus[] = ['connecting', 'ready', 'reconnecting', 'down', 'closed'];

/**
 * Registers Prometheus metrics of a node. Counters and gauges are read from `wss.stats` when
 * scraped, so nothing is added to the node's hot path; connects and disconnects by close code are
 * counted from the node's events (call it before the node takes clients). Returns the registry.
 * Throws `InvalidArgumentError` when the registry has the metrics (same prefix) already: one
 * registry per node.
 *
 * @example
 * ```ts
 * const registry = collectMetrics(wss);
 * app.get('/metrics', async (_req, res) => {
 *   res.type(registry.contentType).send(await registry.metrics());
 * });
 * ```
 */
export function collectMetrics<Identity, Data extends object>(
  node: ScaledWebSocketServer<Identity, Data>,
  options: MetricsOptions = {},
): Registry {
  const registry = options.registry ?? register;
  const p = options.prefix ?? 'wscale_';
  if (registry.getSingleMetric(`${p}connects_total`) !== undefined) {
    throw new InvalidArgumentError(
      `the registry has ${p} metrics already (another node's?): give each node in one process ` +
        'a registry of its own, or a prefix',
    );
  }
  const registers = [registry];
  // One read of the stats per scrape (it walks the clients), shared by every metric collected
  // in the same turn of the event loop, whichever is read first.
  let cached: ServerStats | undefined;
  const current = (): ServerStats => {
    if (cached === undefined) {
      cached = node.stats;
      setImmediate(() => {
        cached = undefined;
      });
    }
    return cached;
  };

  /** Rows of a metric, read at each scrape: labels and value. */
  type Read<L extends string> = (stats: ServerStats) => [Partial<Record<L, string>>, number][];
  /** Reset, then filled from `read` at each scrape (a gauge's `inc` after a reset is a `set`). */
  const fill = <L extends string>(read: Read<L>) =>
    function (this: Counter<L> | Gauge<L>) {
      this.reset();
      for (const [labels, value] of read(current())) this.inc(labels as never, value);
    };
  /** A counter whose value is a total the node keeps. */
  const total = <L extends string>(name: string, help: string, labelNames: L[], read: Read<L>) =>
    new Counter<L>({ name: p + name, help, labelNames, registers, collect: fill(read) });
  const gauge = <L extends string>(name: string, help: string, labelNames: L[], read: Read<L>) =>
    new Gauge<L>({ name: p + name, help, labelNames, registers, collect: fill(read) });
  const entries = <K extends string>(record: Partial<Record<K, number>>) =>
    Object.entries(record) as [K, number][];

  total('messages_in_total', 'Frames received from clients.', [], (s) => [[{}, s.messagesIn]]);
  total('bytes_in_total', 'Bytes received from clients (payloads).', [], (s) => [[{}, s.bytesIn]]);
  total('messages_out_total', 'Frames written to clients, by kind.', ['kind'], (s) =>
    entries(s.messagesOut).map(([kind, value]) => [{ kind }, value]),
  );
  total('bytes_out_total', 'Bytes written to clients (whole frames), by kind.', ['kind'], (s) =>
    entries(s.bytesOut).map(([kind, value]) => [{ kind }, value]),
  );
  total(
    'messages_compressed_total',
    'Messages compressed for permessage-deflate clients, once per message and node.',
    [],
    (s) => [[{}, s.compressed]],
  );
  total('dropped_total', 'Messages not written to a client, by reason.', ['reason'], (s) => [
    [{ reason: 'volatile' }, s.droppedVolatile],
    [{ reason: 'slow_consumer' }, s.dropped - s.droppedVolatile],
  ]);
  total('slow_consumer_closes_total', 'Clients closed with 1013: send buffer full.', [], (s) => [
    [{}, s.slowConsumersClosed],
  ]);
  total('limit_hits_total', 'Limits hit, by limit (see the server options).', ['limit'], (s) =>
    entries(s.limited).map(([limit, value]) => [{ limit }, value]),
  );
  total(
    'violations_total',
    'Connections closed for breaking the protocol, by the close code the node sent.',
    ['code'],
    (s) => entries(s.violations).map(([code, value]) => [{ code }, value]),
  );
  total(
    'failed_sends_total',
    'Sends, joins and leaves of the application that failed (their promise rejected).',
    [],
    (s) => [[{}, s.failedSends]],
  );
  total('joins_refused_total', 'Client joins refused, by ack code.', ['code'], (s) =>
    entries(s.joinsRefused).map(([code, value]) => [{ code }, value]),
  );
  total('resumes_total', 'Session resumes, by result and reason.', ['result', 'reason'], (s) => [
    [{ result: 'recovered' }, s.resumes.recovered],
    ...entries(s.resumes.partial).map(
      ([reason, value]): [{ result: string; reason: string }, number] => [
        { result: 'partial', reason },
        value,
      ],
    ),
    ...entries(s.resumes.failed).map(
      ([reason, value]): [{ result: string; reason: string }, number] => [
        { result: 'failed', reason },
        value,
      ],
    ),
  ]);
  total('replayed_messages_total', 'Missed messages replayed to resuming clients.', [], (s) => [
    [{}, s.messagesOut.replay],
  ]);
  total('queries_total', 'Cross-node queries asked.', [], (s) => [[{}, s.queries.asked]]);
  total('query_partial_total', 'Cross-node queries some node did not answer.', [], (s) => [
    [{}, s.queries.partial],
  ]);
  total('query_seconds_total', 'Seconds spent waiting for cross-node answers.', [], (s) => [
    [{}, s.queries.seconds],
  ]);

  gauge('connections', 'Clients connected now, by protocol.', ['protocol'], () => {
    let v1 = 0;
    for (const client of node.clients.values()) if (client.v1) v1++;
    return [
      [{ protocol: 'raw' }, node.clients.size - v1],
      [{ protocol: 'wscale.v1' }, v1],
    ];
  });
  gauge('rooms', 'Rooms with members on this node.', [], (s) => [[{}, s.rooms]]);
  gauge('subscriptions', "Room memberships of this node's clients.", [], (s) => [
    [{}, s.subscriptions],
  ]);
  gauge('broker_status', 'The broker state: 1 for the current one.', ['status'], () =>
    STATUSES.map((status) => [{ status }, node.brokerStatus === status ? 1 : 0]),
  );
  gauge('broker_queue_depth', 'Publishes waiting for the broker.', [], (s) => [
    [{}, s.brokerQueue],
  ]);
  gauge('peer_nodes', 'Other nodes alive.', [], () => [[{}, node.nodes.length]]);

  const connects = new Counter({
    name: `${p}connects_total`,
    help: 'Clients connected (new and resumed).',
    registers,
  });
  const disconnects = new Counter({
    name: `${p}disconnects_total`,
    help: 'Clients disconnected, by close code (application codes by range).',
    labelNames: ['code'],
    registers,
  });
  node.on('connection', (client) => {
    connects.inc();
    client.on('close', (code) => disconnects.inc({ code: codeLabel(code) }));
  });

  return registry;
}

/**
 * A close code as a label: the protocol's own (1000–1015) and wscale's 4409 as they are, the
 * application's by range (`3000-3999`, `4000-4999`), anything else `other`. A client chooses the
 * code of a close it starts: one label per code would let it add two thousand series to each node.
 */
function codeLabel(code: number): string {
  if ((code >= 1000 && code <= 1015) || code === CloseCode.SessionTakenOver) return String(code);
  if (code >= 3000 && code <= 3999) return '3000-3999';
  if (code >= 4000 && code <= 4999) return '4000-4999';
  return 'other';
}
