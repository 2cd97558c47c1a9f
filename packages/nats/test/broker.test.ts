import { connect } from '@nats-io/transport-node';
import {
  type BrokerStatus,
  BrokerUnavailableError,
  ScaledWebSocketServer,
  WscaleError,
} from '@wscale/core';
import { brokerSuite, until } from '@wscale/core/testing';
import { NatsBroker } from '@wscale/nats';
import { type SingleNats, skipWithoutNats, startNatsServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fastReconnect } from './helpers/clients.js';

const runner = { describe, it, afterEach };

describe.skipIf(skipWithoutNats())('NatsBroker on one nats-server', () => {
  let nats: SingleNats;
  const opened: NatsBroker[] = [];
  const broker = (options: ConstructorParameters<typeof NatsBroker>[0] = {}) => {
    const created = new NatsBroker({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      ...options,
    });
    opened.push(created);
    return created;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await nats?.close();
  });

  const outage = { stop: () => nats.server.kill(), start: () => nats.server.start() };
  brokerSuite(runner, { create: () => broker(), outage });

  // NATS sends a `noEcho` connection's publishes to none of its own subscriptions; several nodes
  // in one process share one broker, and hear each other only through them.
  describe('on connections with noEcho', () => {
    brokerSuite(runner, {
      create: () => broker({ connectionOptions: { ...fastReconnect, noEcho: true } }),
      // What the client sends again after a reconnect reaches the other nodes, not its own twice.
      outage,
    });
  });

  it('hands its own publishes to its own subscriptions, once, on a given noEcho connection', async () => {
    const nc = await connect({ servers: nats.server.url, noEcho: true });
    const other = broker();
    try {
      const b = new NatsBroker({ connection: nc });
      await until(() => b.status === 'ready' && other.status === 'ready', 5000, 'ready');
      const [own, others] = [[] as string[], [] as string[]];
      await b.subscribe('quiet', (payload) => own.push(Buffer.from(payload).toString()));
      await other.subscribe('quiet', (payload) => others.push(Buffer.from(payload).toString()));
      const sent = Array.from({ length: 20 }, (_, i) => `${i}`);
      await Promise.all(sent.map((n) => b.publish('quiet', Buffer.from(n))));
      const last = 'from the other';
      await other.publish('quiet', Buffer.from(last));
      // It comes last to both: a copy of one of ours would come before it.
      await until(() => own.at(-1) === last && others.at(-1) === last, 5000, 'every message');
      expect(own).toEqual([...sent, last]);
      expect(others).toEqual([...sent, last]);
      await b.close();
    } finally {
      await nc.close();
    }
  });

  it('refuses a topic whose subject NATS would not take, instead of losing its connection', async () => {
    const b = broker();
    await until(() => b.status === 'ready', 5000, 'ready');
    const seen: BrokerStatus[] = [];
    b.on('status', (status) => seen.push(status));
    // 3000 bytes of UTF-8 make a subject of 4000 base64url characters and more.
    const long = 'é'.repeat(1500);
    await expect(b.publish(long, Buffer.from('x'))).rejects.toBeInstanceOf(BrokerUnavailableError);
    await expect(b.subscribe(long, () => undefined)).rejects.toThrow(/longer than NATS takes/);
    // The connection stayed up: a topic just short enough goes through, both ways.
    const fits = 'é'.repeat(1400);
    const got: string[] = [];
    await b.subscribe(fits, (payload) => got.push(String(Buffer.from(payload))));
    await b.publish(fits, Buffer.from('through'));
    await until(() => got.length === 1, 5000, 'the message');
    expect(got).toEqual(['through']);
    expect(seen).toEqual([]);
  });

  it('encodes topics into one subject token each', () => {
    const b = new NatsBroker({ servers: nats.server.url });
    void b.close();
    expect(b.subjectFor('a.b')).toBe('wscale.YS5i');
    expect(b.subjectFor('')).toBe('wscale.=');
    for (const topic of ['*', '>', 'a b', 'a.*', 'ünï', '\uD800']) {
      expect(b.subjectFor(topic)).toMatch(/^wscale\.[-_=A-Za-z0-9]+$/);
    }
    expect(b.subjectFor('\uD800')).not.toBe(b.subjectFor('\uFFFD'));
    expect(() => new NatsBroker({ subjectPrefix: 'no-dot' })).toThrow(WscaleError);
    expect(() => new NatsBroker({ subjectPrefix: 'a.*.' })).toThrow(WscaleError);
  });

  it('keeps subject prefixes apart', async () => {
    const [a, b] = [broker({ subjectPrefix: 'app1.' }), broker({ subjectPrefix: 'app2.' })];
    await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
    const got: string[] = [];
    await b.subscribe('t', (payload) => got.push(Buffer.from(payload).toString()));
    await a.publish('t', Buffer.from('x'));
    const c = broker({ subjectPrefix: 'app2.' });
    await c.publish('t', Buffer.from('y'));
    await until(() => got.length === 1, 5000, 'y');
    expect(got).toEqual(['y']);
  });

  it('delivers without publish confirmation when asked to', async () => {
    const [a, b] = [broker({ confirmPublishes: false }), broker()];
    await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
    const got: string[] = [];
    await b.subscribe('fast', (payload) => got.push(Buffer.from(payload).toString()));
    await Promise.all(['1', '2', '3'].map((n) => a.publish('fast', Buffer.from(n))));
    await until(() => got.length === 3, 5000, 'three messages');
    expect(got).toEqual(['1', '2', '3']);
  });

  it('uses a given connection and leaves it open on close', async () => {
    const nc = await connect({ servers: nats.server.url });
    try {
      const b = new NatsBroker({ connection: nc });
      expect(b.status).toBe('connecting');
      await until(() => b.status === 'ready', 5000, 'ready');
      const got: string[] = [];
      await b.subscribe('shared', (payload) => got.push(Buffer.from(payload).toString()));
      await b.publish('shared', Buffer.from('one'));
      await until(() => got.length === 1, 5000, 'one');
      await b.close();
      expect(nc.isClosed()).toBe(false);
      await nc.flush();
    } finally {
      await nc.close();
    }
  });

  it('closes itself, rejecting queued publishes, when a given connection is closed', async () => {
    const nc = await connect({ servers: nats.server.url });
    const b = new NatsBroker({ connection: nc });
    await until(() => b.status === 'ready', 5000, 'ready');
    await nc.close();
    await until(() => b.status === 'closed', 5000, 'closed');
    await expect(b.publish('t', Buffer.from('x'))).rejects.toBeInstanceOf(WscaleError);
  });

  it('holds publishes in a bounded queue while NATS is down, never in the client', async () => {
    const [a, b] = [broker({ maxQueuedPublishes: 3 }), broker()];
    await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
    const got: string[] = [];
    await b.subscribe('queued', (payload) => got.push(Buffer.from(payload).toString()));
    await nats.server.kill();
    try {
      await until(() => a.status !== 'ready', 5000, 'a to notice');
      const queued = ['1', '2', '3'].map((n) => a.publish('queued', Buffer.from(n)));
      await expect(a.publish('queued', Buffer.from('4'))).rejects.toBeInstanceOf(
        BrokerUnavailableError,
      );
      await nats.server.start();
      await Promise.all(queued);
      await until(() => b.status === 'ready', 10_000, 'b ready');
      // Queued messages may race the subscriber's own resubscription (see brokerSuite); what
      // is published once both are back is delivered, in order, after what got through.
      await a.publish('queued', Buffer.from('5'));
      await until(() => got.includes('5'), 5000, 'message 5');
      expect(got.at(-1)).toBe('5');
      expect(got).toEqual([...got].sort());
    } finally {
      await nats.server.start();
    }
  }, 40_000);

  it('started while no server answers, says so within seconds, naming where it tries, and is ready once one does', async () => {
    await nats.server.kill();
    try {
      const late = broker();
      const seen: Array<[BrokerStatus, string | undefined]> = [];
      late.on('status', (status, error) => seen.push([status, error?.message]));
      await until(() => late.status === 'down', 8000, 'down');
      expect(seen[0]![1]).toContain(nats.server.url);
      await nats.server.start();
      await until(() => late.status === 'ready', 10_000, 'ready once the server is up');
    } finally {
      if (nats.server.pid === undefined) await nats.server.start();
    }
  }, 30_000);

  it('survives a kill and restart while publishing: reports status, resubscribes, keeps order', async () => {
    const [a, b] = [broker(), broker()];
    await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
    const received: number[] = [];
    await b.subscribe('busy', (payload) => received.push(Number(Buffer.from(payload))));
    const seen: BrokerStatus[] = [];
    b.on('status', (status) => seen.push(status));
    let sent = 0;
    let rejected = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop && sent < 5000) {
        const n = ++sent;
        await a.publish('busy', Buffer.from(String(n))).catch((error: unknown) => {
          expect(error).toBeInstanceOf(WscaleError);
          rejected++;
        });
        if (n % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await until(() => received.length >= 50, 5000, 'traffic before the kill');
    await nats.server.kill();
    await until(() => b.status !== 'ready' && a.status !== 'ready', 5000, 'down');
    await nats.server.start();
    await until(() => a.status === 'ready' && b.status === 'ready', 10_000, 'ready again');
    const mark = sent;
    await until(() => received.some((n) => n > mark), 10_000, 'delivery after restart');
    stop = true;
    await publisher;
    expect(seen).toContain('ready');
    expect(seen.some((status) => status === 'down' || status === 'reconnecting')).toBe(true);
    expect(rejected).toBe(0);
    // Order per publisher holds across the outage, and nothing arrives twice: a broadcast
    // reaches a member once (docs/guarantees.md).
    for (let i = 1; i < received.length; i++) {
      expect(received[i]!).toBeGreaterThan(received[i - 1]!);
    }
    await until(() => received.at(-1) === sent, 5000, 'the last message');
  }, 60_000);
});

describe.skipIf(skipWithoutNats())('NatsBroker on a connection with limited permissions', () => {
  let nats: SingleNats;
  // Topic names as the broker's subjects carry them (one base64url token each).
  const subject = (topic: string) => `wscale.${Buffer.from(topic).toString('base64url')}`;
  beforeAll(async () => {
    const user = {
      user: 'app',
      password: 'secret',
      permissions: {
        publish: { allow: [subject('allowed')] },
        subscribe: { allow: [subject('allowed'), subject('listen-only')] },
      },
    };
    nats = await startNatsServer({ config: `authorization { users = [${JSON.stringify(user)}] }` });
  });
  afterAll(() => nats?.close());

  const open = () =>
    new NatsBroker({
      servers: nats.server.url,
      connectionOptions: { ...fastReconnect, user: 'app', pass: 'secret' },
    });

  it('keeps a node from starting whose user may not subscribe its topics', async () => {
    const broker = open();
    const node = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', broker });
    node.on('error', () => undefined); // the same error, reported as well
    try {
      await expect(node.ready()).rejects.toThrow(/Permissions Violation for Subscription/);
    } finally {
      await node.close();
      await broker.close();
    }
  });

  it('rejects what NATS refuses, instead of resolving for a message it dropped', async () => {
    const [a, b] = [open(), open()];
    try {
      await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
      const subscribed = b.subscribe('denied', () => undefined);
      await expect(subscribed).rejects.toBeInstanceOf(BrokerUnavailableError);
      await expect(subscribed).rejects.toThrow(/Permissions Violation for Subscription/);
      const got: string[] = [];
      await b.subscribe('listen-only', (payload) =>
        got.push(`listen-only ${Buffer.from(payload)}`),
      );
      await b.subscribe('allowed', (payload) => got.push(`allowed ${Buffer.from(payload)}`));
      // Refused, every time, alone or among publishes NATS takes; the connection stays up.
      for (let round = 0; round < 3; round++) {
        const sent = [
          a.publish('allowed', Buffer.from(`${round}`)),
          a.publish('listen-only', Buffer.from(`${round}`)),
        ];
        await expect(sent[0]).resolves.toBeUndefined();
        await expect(sent[1]).rejects.toThrow(/refused a publish/);
      }
      await expect(a.publish('listen-only', Buffer.from('alone'))).rejects.toBeInstanceOf(
        BrokerUnavailableError,
      );
      await until(() => got.length >= 3, 5000, 'the allowed messages');
      expect(got).toEqual(['allowed 0', 'allowed 1', 'allowed 2']);
      expect(a.status).toBe('ready');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe.skipIf(skipWithoutNats())('NatsBroker when the server reloads its permissions', () => {
  let nats: SingleNats;
  const subject = (topic: string) => `wscale.${Buffer.from(topic).toString('base64url')}`;
  /** A user who may do anything but subscribe the subjects in `deny`. */
  const config = (deny: string[]) => {
    const permissions = { publish: { allow: ['>'] }, subscribe: { allow: ['>'], deny } };
    const user = { user: 'app', password: 'secret', permissions };
    return `authorization { users = [${JSON.stringify(user)}] }`;
  };
  beforeAll(async () => {
    nats = await startNatsServer({ config: config([]) });
  });
  afterAll(() => nats?.close());

  it('is down, saying why, while the server drops a subscription, and hears the topic again once allowed', async () => {
    const open = () =>
      new NatsBroker({
        servers: nats.server.url,
        connectionOptions: { ...fastReconnect, user: 'app', pass: 'secret' },
      });
    const [a, b] = [open(), open()];
    try {
      const seen: string[] = [];
      b.on('status', (status, error) => seen.push(`${status}: ${error?.message ?? ''}`));
      const got: string[] = [];
      await b.subscribe('news', (payload) => got.push(String(Buffer.from(payload))));
      await b.subscribe('weather', (payload) => got.push(String(Buffer.from(payload))));
      await a.publish('news', Buffer.from('before'));
      await until(() => got.includes('before'), 5000, 'the message before');
      await nats.server.reload(config([subject('news')]));
      await until(() => b.status === 'down', 5000, 'the broker down');
      expect(seen.at(-1)).toMatch(
        /^down: NATS dropped the subscription to .*Permissions Violation/,
      );
      // What it publishes meanwhile waits, and goes once the topic is back.
      const queued = b.publish('weather', Buffer.from('queued'));
      await nats.server.reload(config([]));
      await until(() => b.status === 'ready', 10_000, 'the broker ready again');
      await queued;
      await a.publish('news', Buffer.from('after'));
      await until(() => got.includes('after'), 5000, 'the message after');
      expect(got).toEqual(['before', 'queued', 'after']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe.skipIf(skipWithoutNats())('NatsBroker when the server hangs', () => {
  let nats: SingleNats;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(() => nats?.close());

  it('is down once a round trip times out, reconnects, and sends what waited, once each, in order', async () => {
    const open = (options: ConstructorParameters<typeof NatsBroker>[0] = {}) =>
      new NatsBroker({ servers: nats.server.url, connectionOptions: fastReconnect, ...options });
    const [a, b] = [open({ publishTimeoutMs: 1000 }), open()];
    const pid = nats.server.pid!;
    let hung = false;
    try {
      await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
      const got: string[] = [];
      await b.subscribe('news', (payload) => got.push(String(Buffer.from(payload))));
      // Stopped, not killed: the TCP connections stay open, and nothing answers on them.
      process.kill(pid, 'SIGSTOP');
      hung = true;
      const outcomes: string[] = [];
      const first = a.publish('news', Buffer.from('1')).then(
        () => outcomes.push('1 sent'),
        (error: unknown) => outcomes.push(`1 failed: ${String(error)}`),
      );
      // (1 s without an answer; a loaded machine may see it late.)
      await until(() => a.status !== 'ready', 10_000, 'the broker to notice the hang');
      const second = a.publish('news', Buffer.from('2')).then(
        () => outcomes.push('2 sent'),
        (error: unknown) => outcomes.push(`2 failed: ${String(error)}`),
      );
      // Both wait in the queue, the first sent again in its place.
      await until(() => a.queued === 2, 5000, 'both publishes queued');
      expect(outcomes).toEqual([]);
      process.kill(pid, 'SIGCONT');
      hung = false;
      await Promise.all([first, second]);
      // Resolved, not rejected (in whatever order their promises settle: the wire order is below).
      expect(outcomes.sort()).toEqual(['1 sent', '2 sent']);
      expect(a.status).toBe('ready');
      await a.publish('news', Buffer.from('3'));
      await until(() => got.includes('3'), 5000, 'the message after');
      expect(got).toEqual(['1', '2', '3']);
    } finally {
      if (hung) process.kill(pid, 'SIGCONT');
      await Promise.all([a.close(), b.close()]);
    }
  }, 30_000);
});
