import { median } from '../report/aggregate.js';
import type { CompressionResults, CompressionRound } from './compression-scenario.js';
import { CONTENDERS } from './compression-scenario.js';

const range = (values: number[], digits: number) =>
  values.length < 2
    ? ''
    : ` (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

/** The lowest and highest value, or the one value when they are the same. */
const spread = (values: number[]) => {
  const [low, high] = [Math.min(...values).toFixed(2), Math.max(...values).toFixed(2)];
  return low === high ? low : `${low}–${high}`;
};

const sum = (rounds: CompressionRound[], key: 'lost' | 'reordered' | 'closed') =>
  rounds.reduce((total, round) => total + (round[key] ?? 0), 0);

/** The compression scenario's section of the report; empty when it did not run. */
export function compressionSection(
  results: CompressionResults | undefined,
  table: (header: string[], rows: string[][]) => string,
): string[] {
  if (results === undefined || results.rounds.length === 0) return [];
  const { sizes } = results;
  const by = new Map<string, CompressionRound[]>();
  for (const round of results.rounds) {
    by.set(round.contender, [...(by.get(round.contender) ?? []), round]);
  }
  const of = (id: string, key: 'wireBytes' | 'cpuMicros' | 'rssPerConnection') =>
    median((by.get(id) ?? []).map((round) => round[key]));
  const rows: string[][] = [];
  for (const contender of CONTENDERS) {
    const rounds = by.get(contender.id);
    if (rounds === undefined) continue;
    const plain = contender.server === 'wscale' ? 'wscale' : 'socketio';
    const wire = rounds.map((round) => round.wireBytes);
    const cpu = rounds.map((round) => round.cpuMicros);
    const compressed = rounds.flatMap((round) => round.compressedPerMessage ?? []);
    rows.push([
      contender.label,
      `${median(wire).toFixed(0)}${range(wire, 0)}`,
      `${(median(wire) / of(plain, 'wireBytes')).toFixed(2)}×`,
      `${median(cpu).toFixed(2)}${range(cpu, 2)}`,
      `${(median(cpu) / of('wscale-deflate', 'cpuMicros')).toFixed(2)}×`,
      (of(contender.id, 'rssPerConnection') / 1024).toFixed(1),
      compressed.length === 0 ? '—' : spread(compressed),
      `${Math.min(...rounds.map((round) => round.negotiated))} / ${sizes.clients}`,
      `${sum(rounds, 'lost')} / ${sum(rounds, 'reordered')} / ${sum(rounds, 'closed')}`,
    ]);
  }
  const payload = median(results.rounds.map((round) => round.payloadBytes));
  return [
    '## Compression (permessage-deflate)',
    '',
    table(
      [
        'contender',
        'bytes on the wire / delivery',
        'vs the same server uncompressed',
        'server CPU µs / delivery',
        'vs wscale, deflate',
        'node RSS KiB / connection',
        'deflates / message, per node',
        'clients that negotiated it',
        'lost / out of order / clients closed',
      ],
      rows,
    ),
    '',
    `${sizes.clients} clients (\`ws\` for wscale, \`socket.io-client\` for Socket.IO; both offer`,
    `permessage-deflate, as browsers do) in one room over ${sizes.nodes} nodes on Redis; node 0`,
    `broadcasts ${sizes.messages} chat-like JSON messages (200 to 2000 bytes, ${payload.toFixed(0)} on average) at`,
    `${sizes.rate}/s. Messages under ${sizes.threshold} bytes go uncompressed for every contender. Bytes are`,
    "what the clients' sockets read (WebSocket and Socket.IO framing included); CPU is every node",
    "process's own; RSS is the nodes' after the burst and GC, less theirs before any client came",
    '(Socket.IO keeps a compressor per socket). "Deflates / message" is wscale\'s `stats.compressed`',
    'per message sent, on each node (1 for a message compressed once per node, whatever its clients).',
    `Median of ${sizes.rounds} round(s), range in brackets, contenders in a rotating order.`,
    '',
    table(
      ['payload bytes', ...results.ratios.map((row) => String(row.bytes))],
      [
        [
          'deflated / raw, no context takeover',
          ...results.ratios.map((row) => row.ratio.toFixed(2)),
        ],
      ],
    ),
    '',
  ];
}
