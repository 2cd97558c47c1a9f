import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { Heartbeat } from '../src/heartbeat.js';
import {
  backoffDelay,
  browserNetwork,
  type ClientError,
  type ClientState,
  InvalidOptionError,
  WscaleClient,
} from '../src/index.js';
import { ReconnectScheduler } from '../src/reconnect-scheduler.js';
import { closeAll, openClient, startFixture, stateOf } from './helpers/clients.js';
import { FakeNetwork } from './helpers/fake-network.js';

afterEach(closeAll);

/** A settle window for negative checks: long against the tiny backoffs these tests use. */
const SETTLE_MS = 250;

describe('backoff', () => {
  it('stays within [0, min(cap, base × 2^attempt)) and uses the whole range', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(1000, 50 * 2 ** attempt);
      expect(backoffDelay(attempt, 50, 1000, () => 0)).toBe(0);
      expect(backoffDelay(attempt, 50, 1000, () => 0.999999)).toBe(Math.floor(0.999999 * ceiling));
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt, 50, 1000);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(ceiling);
      }
    }
    // 2^5000 is Infinity: the cap still holds.
    expect(backoffDelay(5000, 50, 1000, () => 0.5)).toBe(500);
  });

  it('retries a refused server with bounded delays, then gives up after maxReconnectAttempts', async () => {
    const fixture = await startFixture();
    fixture.refuseWith = 503;
    const cap = 40;
    const { client, seen } = openClient(fixture.url, {
      backoffBaseMs: 10,
      backoffCapMs: cap,
      maxReconnectAttempts: 6,
    });
    await stateOf(client, 'closed', 5000);
    expect(fixture.attempts).toHaveLength(7);
    expect(seen.closes).toHaveLength(7);
    expect(seen.closes.slice(0, 6).every((c) => c.reconnecting)).toBe(true);
    expect(seen.closes[6]).toMatchObject({ code: 1006, reconnecting: false });
    // How long each wait is is arithmetic, checked on fake timers below.
    await delay(SETTLE_MS);
    expect(fixture.attempts).toHaveLength(7);
  });

  it('waits exactly the jittered backoff before each attempt, a quick jitter after 1012, the longest offline', () => {
    vi.useFakeTimers();
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.75);
    try {
      const network = new FakeNetwork();
      const fired: number[] = [];
      const schedule = {
        baseMs: 100,
        capMs: 1000,
        maxAttempts: 6,
        stableAfterMs: 5000,
        restartJitterMs: 40,
        network,
      };
      const scheduler = new ReconnectScheduler(schedule, () => fired.push(Date.now()));
      scheduler.start();
      /** Plans the next attempt and checks it fires after exactly `wait` ms, not a tick earlier. */
      const expectWait = (restart: boolean, wait: number) => {
        const before = fired.length;
        expect(scheduler.plan(restart)).toBe(true);
        vi.advanceTimersByTime(wait - 1);
        expect(fired).toHaveLength(before);
        vi.advanceTimersByTime(1);
        expect(fired).toHaveLength(before + 1);
      };
      // 0.75 of min(cap, base × 2^attempt): 75, 150, 300, 600, then the cap: 750, 750.
      for (const wait of [75, 150, 300, 600, 750, 750]) expectWait(false, wait);
      expect(scheduler.plan(false)).toBe(false);
      vi.advanceTimersByTime(60_000);
      expect(fired).toHaveLength(6);

      // A connection welcomed and closed at once (1013 after the welcome) starts the attempts over
      // but not the backoff: it goes on from the cap, and so does a restart (1012) after many.
      scheduler.succeeded();
      expectWait(false, 750);
      scheduler.succeeded();
      expectWait(true, 750);
      // After a connection that lasted, the backoff starts over.
      scheduler.succeeded();
      vi.advanceTimersByTime(5000);
      expectWait(false, 75);
      // A restart (1012) of a welcomed connection, however short it lived, waits within the
      // restart jitter; a second restart before any welcome backs off like any failure.
      scheduler.succeeded();
      expectWait(true, 30);
      expectWait(true, 300);

      // Offline (as the device says), an attempt only after the longest backoff, using up no
      // attempt (the device may be wrong); back online, an attempt at once and the backoff from
      // the start.
      network.set(false);
      const attempts = scheduler.attempts;
      expectWait(false, 1000);
      expectWait(false, 1000);
      expect(scheduler.attempts).toBe(attempts);
      expect(scheduler.plan(false)).toBe(true);
      network.set(true);
      expect(fired).toHaveLength(14);
      expect(scheduler.attempts).toBe(1);
      expectWait(false, 150);
    } finally {
      random.mockRestore();
      vi.useRealTimers();
    }
  });

  it('starts the backoff over after a successful connection', async () => {
    const fixture = await startFixture();
    const { client } = openClient(fixture.url, { backoffBaseMs: 10, maxReconnectAttempts: 1 });
    for (let n = 1; n <= 4; n++) {
      const connection = await fixture.connection(n);
      await stateOf(client, 'open');
      if (n < 4) connection.ws.terminate();
    }
    expect(client.state).toBe('open');
  });
});

describe('close codes', () => {
  for (const code of [1000, 1007, 1008, 1009, 4409]) {
    it(`does not reconnect after ${code}`, async () => {
      const fixture = await startFixture();
      const { client, seen } = openClient(fixture.url, { backoffBaseMs: 10 });
      const connection = await fixture.connection(1);
      await stateOf(client, 'open');
      connection.ws.close(code, 'bye');
      await stateOf(client, 'closed');
      expect(seen.closes).toEqual([{ code, reason: 'bye', reconnecting: false }]);
      await delay(SETTLE_MS);
      expect(fixture.connections).toHaveLength(1);
    });
  }

  for (const code of [1001, 1011, 1013, 'dropped'] as const) {
    it(`reconnects with backoff after ${code}`, async () => {
      const fixture = await startFixture();
      const { client, seen } = openClient(fixture.url, { backoffBaseMs: 10 });
      const connection = await fixture.connection(1);
      await stateOf(client, 'open');
      if (code === 'dropped') connection.ws.terminate();
      else connection.ws.close(code);
      const second = await fixture.connection(2);
      expect(second.messages[0]).toMatchObject({ t: 'hello', session: 'token-1' });
      expect(seen.closes[0]).toMatchObject({
        code: code === 'dropped' ? 1006 : code,
        reconnecting: true,
      });
    });
  }

  it('reconnects at once after 1012, whatever the backoff', async () => {
    const fixture = await startFixture();
    const { client } = openClient(fixture.url, { backoffBaseMs: 60_000, restartJitterMs: 20 });
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    connection.ws.close(1012, 'draining');
    await fixture.connection(2, 1000);
    await stateOf(client, 'open');
  });

  it('lets shouldReconnect overrule the default', async () => {
    const fixture = await startFixture();
    const { client } = openClient(fixture.url, {
      backoffBaseMs: 10,
      shouldReconnect: ({ code }) => code === 1000,
    });
    await fixture.connection(1);
    await stateOf(client, 'open');
    fixture.last.ws.close(1000);
    await fixture.connection(2);
    await stateOf(client, 'open');
    fixture.last.ws.close(1011);
    await stateOf(client, 'closed');
  });

  it('closes for good on a malformed frame and reports a ProtocolError', async () => {
    const fixture = await startFixture();
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 10 });
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    connection.ws.send('{"t":"msg","d":');
    await stateOf(client, 'closed');
    expect(seen.errors[0]).toMatchObject({ name: 'ProtocolError', code: 'PROTOCOL_ERROR' });
    expect(seen.closes).toEqual([
      { code: 1002, reason: expect.stringContaining('malformed'), reconnecting: false },
    ]);
    await connection.closed;
  });

  it('closes for good with a ProtocolError when the server does not select wscale.v1', async () => {
    const fixture = await startFixture({ selectProtocol: false });
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 10 });
    await stateOf(client, 'closed');
    await delay(SETTLE_MS);
    expect(fixture.attempts).toHaveLength(1);
    expect(seen.errors.map((error) => (error as ClientError).code)).toEqual(['PROTOCOL_ERROR']);
    expect(seen.closes.at(-1)).toMatchObject({ code: 1002, reconnecting: false });
  });

  it('says why an upgrade was refused, where the runtime tells (Node): shouldReconnect can stop on 401', async () => {
    const fixture = await startFixture();
    fixture.refuseWith = 401;
    const { client, seen } = openClient(fixture.url, {
      backoffBaseMs: 10,
      shouldReconnect: (close) => !close.reason.includes('401'),
    });
    await stateOf(client, 'closed');
    expect(fixture.attempts).toHaveLength(1);
    expect(seen.closes.at(-1)).toMatchObject({
      code: 1006,
      reason: 'Unexpected server response: 401',
      reconnecting: false,
    });
  });

  it('close() sends 1000, never reconnects, and connect() resumes the session later', async () => {
    const fixture = await startFixture();
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 10 });
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    await client.close();
    expect(client.state).toBe('closed');
    expect(await connection.closed).toEqual({ code: 1000, reason: '' });
    expect(seen.closes).toEqual([{ code: 1000, reason: '', reconnecting: false }]);
    await delay(SETTLE_MS);
    expect(fixture.connections).toHaveLength(1);

    client.connect();
    expect(client.state).toBe('resuming');
    const second = await fixture.connection(2);
    expect(second.messages[0]).toMatchObject({ session: 'token-1' });
    await stateOf(client, 'open');
  });

  it('stays closed when a listener calls close() while the client is about to reconnect', async () => {
    const fixture = await startFixture();
    const { client } = openClient(fixture.url, { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    client.on('close', () => void client.close());
    fixture.last.ws.close(1011);
    await stateOf(client, 'closed');
    await delay(SETTLE_MS);
    expect(client.state).toBe('closed');
    expect(fixture.connections).toHaveLength(1);
  });

  it('asks a url function for every attempt, also an async one', async () => {
    const fixture = await startFixture();
    let n = 0;
    const { client } = openClient(async () => `${fixture.url}/?attempt=${++n}`, {
      backoffBaseMs: 10,
    });
    await fixture.connection(1);
    await stateOf(client, 'open');
    fixture.last.ws.terminate();
    await fixture.connection(2);
    expect(fixture.attempts.map((a) => a.url)).toEqual(['/?attempt=1', '/?attempt=2']);
  });
});

describe('liveness', () => {
  /** A heartbeat pinging every 1000 ms with a 300 ms timeout, and what it did, at what time. */
  function pinging() {
    const events: string[] = [];
    const heartbeat = new Heartbeat(1000, 300);
    heartbeat.start(
      () => events.push(`ping@${Date.now()}`),
      () => events.push(`dead@${Date.now()}`),
    );
    return { heartbeat, events };
  }

  it('pings every interval and declares the connection dead exactly when a ping goes unanswered', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const { heartbeat, events } = pinging();
      vi.advanceTimersByTime(1200);
      heartbeat.pong();
      vi.advanceTimersByTime(1099); // 2299: pinged again at 2000, 299 ms without an answer
      expect(events).toEqual(['ping@1000', 'ping@2000']);
      vi.advanceTimersByTime(1);
      expect(events).toEqual(['ping@1000', 'ping@2000', 'dead@2300']);
      vi.advanceTimersByTime(10_000); // stopped: no more pings once dead
      expect(events).toHaveLength(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('waits on for a pong behind other frames, three timeouts at most: a link dead one way is dropped', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const { heartbeat, events } = pinging();
      // Frames keep coming, the pong with them after 500 ms (queued behind them): kept.
      vi.advanceTimersByTime(1100);
      heartbeat.alive();
      vi.advanceTimersByTime(300);
      heartbeat.alive();
      vi.advanceTimersByTime(100);
      heartbeat.pong();
      // Frames keep coming, no pong ever (what the client sends no longer arrives): dead at
      // three timeouts after the ping, however much else arrives.
      for (let at = 1500; at < 4000; at += 100) {
        vi.advanceTimersByTime(100);
        heartbeat.alive();
      }
      expect(events).toEqual(['ping@1000', 'ping@2000', 'dead@2900']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('drops a connection whose pings go unanswered, and reconnects', async () => {
    const fixture = await startFixture({ answerPing: false });
    const { client, seen } = openClient(fixture.url, {
      backoffBaseMs: 10,
      pingIntervalMs: 40,
      pongTimeoutMs: 40,
    });
    const first = await fixture.connection(1);
    await first.waitFor((m) => m.t === 'ping');
    await fixture.connection(2);
    expect(seen.closes[0]).toMatchObject({
      code: 1006,
      reason: expect.stringContaining('no pong'),
      reconnecting: true,
    });
    await stateOf(client, 'open');
  });

  it('keeps a connection whose pings are answered', async () => {
    const fixture = await startFixture();
    // The pings span more than twice the pong timeout: a pong not handled would close it. The
    // timeout leaves room for a busy machine's event loop.
    const { client } = openClient(fixture.url, { pingIntervalMs: 30, pongTimeoutMs: 200 });
    const connection = await fixture.connection(1);
    await until(
      () => connection.messages.filter((m) => m.t === 'ping').length >= 15,
      5000,
      'pings',
    );
    expect(fixture.connections).toHaveLength(1);
    expect(client.state).toBe('open');
  });

  it('gives up on a server that never says welcome, after connectTimeoutMs', async () => {
    const fixture = await startFixture({ welcome: () => undefined });
    const { seen } = openClient(fixture.url, { backoffBaseMs: 10, connectTimeoutMs: 100 });
    await fixture.connection(2);
    expect(seen.closes[0]).toMatchObject({
      code: 1006,
      reason: expect.stringContaining('no welcome'),
      reconnecting: true,
    });
  });
});

describe('online and offline', () => {
  it('waits while offline and reconnects at once when back online', async () => {
    const fixture = await startFixture();
    const network = new FakeNetwork();
    const { client } = openClient(fixture.url, { backoffBaseMs: 60_000, network });
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    network.set(false);
    expect(client.state).toBe('open'); // offline alone does not drop a working connection
    connection.ws.terminate();
    await stateOf(client, 'reconnecting');
    await delay(SETTLE_MS);
    expect(fixture.attempts).toHaveLength(1);
    network.set(true);
    await fixture.connection(2, 1000);
    await stateOf(client, 'open');
  });

  it('reconnects while the device says it is offline, after the longest backoff: the device may be wrong', async () => {
    const fixture = await startFixture();
    const network = new FakeNetwork();
    const { client } = openClient(fixture.url, { backoffBaseMs: 10, backoffCapMs: 300, network });
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    network.set(false);
    connection.ws.terminate();
    await fixture.connection(2, 3000);
    await stateOf(client, 'open');
  });

  it('stops a pending retry when the network goes offline', async () => {
    const fixture = await startFixture();
    fixture.refuseWith = 503;
    const network = new FakeNetwork();
    const states: ClientState[] = [];
    const { client } = openClient(fixture.url, { backoffBaseMs: 100, backoffCapMs: 5000, network });
    client.on('state', (s) => states.push(s));
    await until(() => fixture.attempts.length >= 2, 2000, 'two attempts');
    network.set(false);
    const attempts = fixture.attempts.length;
    await delay(SETTLE_MS + 100);
    // At most the attempt already in flight when the network went away.
    expect(fixture.attempts.length).toBeLessThanOrEqual(attempts + 1);
    expect(client.state).toBe('reconnecting');
    fixture.refuseWith = undefined;
    network.set(true);
    await stateOf(client, 'open');
  });

  it('listens to the network only while not closed', async () => {
    const fixture = await startFixture();
    const network = new FakeNetwork();
    const { client } = openClient(fixture.url, { network });
    await stateOf(client, 'open');
    expect(network.listeners.size).toBe(1);
    await client.close();
    expect(network.listeners.size).toBe(0);
  });

  it('reads the browser signal from navigator.onLine and online/offline events', () => {
    const target = Object.assign(new EventTarget(), { navigator: { onLine: true } });
    const signal = browserNetwork(target);
    expect(signal?.online).toBe(true);
    const heard: boolean[] = [];
    const stop = signal!.subscribe((online) => heard.push(online));
    target.navigator.onLine = false;
    target.dispatchEvent(new Event('offline'));
    expect(signal!.online).toBe(false);
    target.dispatchEvent(new Event('online'));
    stop();
    target.dispatchEvent(new Event('offline'));
    expect(heard).toEqual([false, true]);
    // Node has no such thing.
    expect(browserNetwork(new EventTarget())).toBeUndefined();
    expect(browserNetwork()).toBeUndefined();
  });
});

describe('options', () => {
  it('asks for a WebSocket constructor where the runtime has none', () => {
    // Node 20 has no global WebSocket; on later versions, hide it for this test.
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
    delete (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      expect(() => new WscaleClient('ws://127.0.0.1:1', { autoConnect: false })).toThrow(
        InvalidOptionError,
      );
    } finally {
      if (saved) Object.defineProperty(globalThis, 'WebSocket', saved);
    }
  });

  it('rejects out-of-range options with INVALID_OPTION', () => {
    for (const options of [
      { backoffBaseMs: -1 },
      { backoffCapMs: Number.NaN },
      { requestTimeoutMs: 0 },
      { sendQueueSize: -5 },
      // A timer given more than 2^31 - 1 ms fires at once: "never" would be "now".
      { requestTimeoutMs: Number.POSITIVE_INFINITY },
      { connectTimeoutMs: 2 ** 31 },
      { pongTimeoutMs: Number.POSITIVE_INFINITY },
      { backoffCapMs: Number.POSITIVE_INFINITY },
    ]) {
      expect(
        () => new WscaleClient('ws://x', { WebSocket, autoConnect: false, ...options }),
      ).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
    const longest = { requestTimeoutMs: 2 ** 31 - 1, maxReconnectAttempts: Infinity };
    expect(new WscaleClient('ws://x', { WebSocket, autoConnect: false, ...longest })).toBeDefined();
  });

  it("rejects a call's timeoutMs that no timer can wait, with INVALID_ARGUMENT", async () => {
    const client = new WscaleClient('ws://x', { WebSocket, autoConnect: false });
    for (const timeoutMs of [Number.POSITIVE_INFINITY, 2 ** 31, -1, 0, Number.NaN]) {
      await expect(client.request('x', { timeoutMs })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
      await expect(client.join('room', { timeoutMs })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    }
    await client.close();
  });
});
