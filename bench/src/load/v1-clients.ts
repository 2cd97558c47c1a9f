import { createClient, type WelcomeInfo, type WscaleClient } from '@wscale/client';
import { decodeServerFrame } from '@wscale/core/protocol';
import { WebSocket } from 'ws';
import { ROOM } from '../wire.js';
import type { OnData } from './clients.js';

/** A `wscale.v1` client of the churn scenario, with the times of its last drop and resume. */
export interface V1Client {
  readonly index: number;
  readonly client: WscaleClient;
  /** When its connection last dropped (performance.now()), 0 if it did not. */
  downAt: number;
  /** When it last started to resume (connecting with its session). */
  resumingAt: number;
  /** When its last `welcome` arrived, and whether it was a resume and the room was recovered. */
  welcomedAt: number;
  resumed: boolean;
  recovered: boolean;
  /**
   * Room messages that arrived on the wire at or below an offset already received in their epoch:
   * duplicates the client drops before the application (and so before the tracker) sees them.
   */
  wireRepeats: number;
  /** Closes since the last drop was armed, and the last one's code and reason (diagnostics). */
  closes: number;
  lastClose: string;
}

/**
 * The `ws` WebSocket, with a tap that calls `repeated` for each offset that arrives again on the
 * wire (the client's own dedupe would hide it from what it hands the application).
 */
function tapped(repeated: () => void) {
  const last = new Map<string, number>();
  return class TappedWebSocket extends WebSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols);
      this.on('message', (data: Buffer, isBinary: boolean) => {
        const { message } = decodeServerFrame(isBinary ? new Uint8Array(data) : data.toString());
        if (message.t !== 'msg' || message.o === undefined || message.e === undefined) return;
        if (message.o <= (last.get(message.e) ?? 0)) repeated();
        else last.set(message.e, message.o);
      });
    }
  };
}

/**
 * Connects a `wscale.v1` client that joins the room. Attempt n goes to node (index + n) mod K, so a
 * client whose connection drops comes back on the next node and must resume there.
 */
export async function connectV1(
  urls: string[],
  index: number,
  onData: OnData,
  timeoutMs: number,
): Promise<V1Client> {
  let attempt = 0;
  const client = createClient(() => urls[(index + attempt++) % urls.length]!, {
    WebSocket: tapped(() => record.wireRepeats++),
    pingIntervalMs: 0,
    // The client's own connect timeout (10 s), as users run it: a resume attempt that gets no
    // `welcome` is given up and retried as it would be for them. Only the first join, queued
    // behind thousands of connects, gets the scenario's budget.
    requestTimeoutMs: timeoutMs,
  });
  const record: V1Client = {
    index,
    client,
    downAt: 0,
    resumingAt: 0,
    welcomedAt: 0,
    resumed: false,
    recovered: false,
    wireRepeats: 0,
    closes: 0,
    lastClose: '',
  };
  client.on('close', (close) => {
    record.closes++;
    record.lastClose = `${close.code} ${close.reason}`.trim();
  });
  client.on('message', (data) =>
    onData(index, typeof data === 'string' ? data : Buffer.from(data)),
  );
  client.on('state', (state, previous) => {
    const now = performance.now();
    if (previous === 'open' && state !== 'open') record.downAt = now;
    if (state === 'resuming') record.resumingAt = now;
  });
  client.on('welcome', (info: WelcomeInfo) => {
    record.welcomedAt = performance.now();
    record.resumed = info.resumed;
    record.recovered = info.rooms[ROOM]?.recovered === true;
  });
  await client.join(ROOM);
  return record;
}
