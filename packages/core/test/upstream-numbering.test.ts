import type { AddressInfo } from 'node:net';
import { CloseCode, MemoryStateStore, type MessageInfo } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamLedger } from '../src/v1/upstream.js';
import { TestCluster } from './helpers/nodes.js';
import { json, RawSocket } from './helpers/raw-socket.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => {
  RawSocket.destroyAll();
  return cluster.closeAll();
});

async function startNode() {
  const [node] = await cluster.start(1, {
    stateStore: new MemoryStateStore(),
    sessionSecret: 'a-test-secret-of-enough-bytes',
    onRequest: (_client, data) => `re ${String(data)}`,
  });
  const heard: Array<{ text: string; info: MessageInfo }> = [];
  node!.on('connection', (client) => {
    client.on('message', (text, _binary, info) => heard.push({ text: String(text), info }));
  });
  return { node: node!, heard };
}

/** How the server closed the peer's connection (within a bounded wait). */
async function closeOf(peer: V1Peer): Promise<{ code: number; reason: string }> {
  let closed: { code: number; reason: string } | undefined;
  void peer.closed.then((info) => (closed = info));
  await until(() => closed !== undefined, 3000, 'the connection to close');
  return closed!;
}

describe('UpstreamLedger numbering', () => {
  it('refuses a number not above the last unless it is marked as sent again', () => {
    const ledger = new UpstreamLedger({ up: 3 }, false);
    expect(ledger.admit(3, false)).toBe('backwards');
    expect(ledger.admit(1, false)).toBe('backwards');
    expect(ledger.admit(2, true)).toBe('duplicate');
    expect(ledger.admit(6, false)).toBe('new'); // a gap: numbers the client never sent
    expect(ledger.last).toBe(6);
  });
});

describe('upstream numbering (wscale.v1)', () => {
  it('closes 1002 on a number that goes backwards without p, and hands it on to no one', async () => {
    const { node, heard } = await startNode();
    const { peer } = await V1Peer.connect(node);
    for (const s of [1, 2, 3]) peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 3, 2000, 'three messages');
    peer.send({ t: 'msg', d: 'again', s: 2 });
    peer.send({ t: 'msg', d: 'after', s: 4 });
    const closed = await closeOf(peer);
    expect(closed.code).toBe(CloseCode.ProtocolError);
    expect(closed.reason).toMatch(/backwards/);
    expect(heard.map((h) => h.text)).toEqual(['m1', 'm2', 'm3']);
  });

  it('closes 1002 on a request that repeats the last number without p, without answering it', async () => {
    const { node } = await startNode();
    const { peer } = await V1Peer.connect(node);
    peer.send({ t: 'req', id: 1, d: 'q', s: 1 });
    expect((await peer.next('ack')).d).toBe('re q');
    peer.send({ t: 'req', id: 2, d: 'q', s: 1 });
    expect((await closeOf(peer)).code).toBe(CloseCode.ProtocolError);
    expect(peer.all('ack')).toHaveLength(1);
  });

  it('drops and acknowledges a number seen before when marked p, and takes a gap forward', async () => {
    const { node, heard } = await startNode();
    const { peer, welcome } = await V1Peer.connect(node);
    peer.send({ t: 'msg', d: 'm1', s: 1 });
    peer.send({ t: 'msg', d: 'm1', s: 1, p: 1 });
    peer.send({ t: 'msg', d: 'm5', s: 5 });
    await until(() => peer.all('rcv').at(-1)?.s === 5, 2000, 'rcv 5');
    peer.send({ t: 'msg', d: 'm3', s: 3, p: 1 }); // inside the gap, but below the last: dropped
    peer.send({ t: 'msg', d: 'm6', s: 6 });
    await until(() => peer.all('rcv').at(-1)?.s === 6, 2000, 'rcv 6');
    expect(heard.map((h) => [h.text, h.info.id])).toEqual([
      ['m1', `${welcome.client}:1`],
      ['m5', `${welcome.client}:5`],
      ['m6', `${welcome.client}:6`],
    ]);
    expect(peer.ws.readyState).toBe(peer.ws.OPEN);
  });

  it('handles numbered frames pipelined behind a resuming hello in order, and acknowledges them once', async () => {
    const { node, heard } = await startNode();
    const first = await V1Peer.connect(node);
    for (const s of [1, 2]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 2, 2000, 'two messages');
    first.peer.ws.terminate();

    const raw = await RawSocket.open((node.address() as AddressInfo).port);
    raw.write(
      Buffer.concat([
        json({ t: 'hello', session: first.welcome.session }),
        json({ t: 'msg', d: 'm2', s: 2, p: 1 }),
        json({ t: 'msg', d: 'm3', s: 3 }),
        json({ t: 'req', id: 9, d: 'q4', s: 4 }),
        json({ t: 'msg', d: 'm5', s: 5 }),
      ]),
    );
    expect(await raw.next('welcome')).toMatchObject({ resumed: true, s: 2 });
    expect(await raw.next('ack', 9)).toMatchObject({ d: 're q4' });
    await raw.next('rcv');
    await delay(150); // past the receipt window: a second rcv or ack would be here by now
    const client = first.welcome.client;
    expect(heard.map((h) => [h.text, h.info.id])).toEqual(
      [1, 2, 3, 5].map((s) => [`m${s}`, `${client}:${s}`]),
    );
    const answers = raw.messages().filter((message) => message.t === 'rcv' || message.t === 'ack');
    expect(answers).toEqual([
      { t: 'ack', id: 9, d: 're q4' },
      { t: 'rcv', s: 5 },
    ]);
  });
});
