import { type HelloMessage, inboxOf, type WelcomeMessage } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, openClient, startFixture as start, stateOf, texts } from './helpers/clients.js';

afterEach(closeAll);

describe('hello and welcome', () => {
  it('offers wscale.v1, says hello first, and keeps what welcome gives', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url);
    expect(client.state).toBe('connecting');
    const connection = await fixture.connection(1);
    expect(connection.ws.protocol).toBe('wscale.v1');
    expect(connection.messages[0]).toEqual({ t: 'hello' });
    await stateOf(client, 'open');
    expect(seen.states).toEqual(['connecting', 'open']);
    expect(client.clientId).toBe('client-1');
    expect(client.session).toBe('token-1');
    expect(client.node).toBe('fixture');
    expect(seen.welcomes).toEqual([
      {
        session: 'token-1',
        clientId: 'client-1',
        node: 'fixture',
        resumed: false,
        reason: 'new',
        rooms: {},
      },
    ]);
  });

  it('resumes with its token and per-room positions after a drop, and emits resume', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 20 });
    const resumes: boolean[] = [];
    client.on('resume', (info) => resumes.push(info.resumed));
    const first = await fixture.connection(1);
    await stateOf(client, 'open');
    first.send({ t: 'joined', r: 'chat', o: 41, e: 'E1' });
    first.send({ t: 'joined', r: 'lobby' });
    first.send({ t: 'msg', r: 'chat', o: 42, e: 'E1', d: 'm42' });
    await until(() => seen.messages.length === 1, 2000, 'm42');
    expect(client.rooms.sort()).toEqual(['chat', 'lobby']);

    first.ws.terminate();
    const second = await fixture.connection(2);
    expect(second.messages[0]).toEqual({
      t: 'hello',
      session: 'token-1',
      rooms: { chat: { o: 42, e: 'E1' } },
    });
    await stateOf(client, 'open');
    expect(seen.states).toEqual(['connecting', 'open', 'reconnecting', 'resuming', 'open']);
    expect(seen.closes[0]).toMatchObject({ code: 1006, reconnecting: true });
    expect(resumes).toEqual([true]);
    expect(client.clientId).toBe('client-1');
    // The default fixture welcome lists only rooms with positions: the session lost "lobby".
    expect(client.rooms).toEqual(['chat']);
    expect(seen.left).toEqual(['lobby']);
  });

  it('drops its room positions when the session was not resumed', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 20 });
    const first = await fixture.connection(1);
    await stateOf(client, 'open');
    first.send({ t: 'joined', r: 'chat', o: 5, e: 'E1' });
    await until(() => client.rooms.length === 1, 2000, 'joined');
    fixture.sessions.clear(); // the server forgot the session: it answers resumed: false
    first.ws.terminate();
    const second = await fixture.connection(2);
    expect(second.messages[0]).toMatchObject({ session: 'token-1', rooms: { chat: { o: 5 } } });
    await until(() => seen.welcomes.length === 2, 2000, 'second welcome');
    expect(seen.welcomes[1]).toMatchObject({ resumed: false, reason: 'expired' });
    expect(client.rooms).toEqual([]);
    expect(client.position('chat')).toBeUndefined();
    expect(seen.left).toEqual(['chat']);

    // The next resume presents the new session and no stale rooms.
    second.ws.terminate();
    const third = await fixture.connection(3);
    expect(third.messages[0]).toEqual({ t: 'hello', session: client.session });
  });

  it('starts a recovered room from its own position and an unrecovered one from the server', async () => {
    const fixture = await start({
      welcome: (hello: HelloMessage): WelcomeMessage =>
        hello.session
          ? {
              t: 'welcome',
              session: hello.session,
              client: 'c',
              node: 'n2',
              resumed: true,
              rooms: {
                kept: { recovered: true, o: 12, e: 'E' },
                lost: { recovered: false, reason: 'too-old', o: 90, e: 'E' },
              },
            }
          : {
              t: 'welcome',
              session: 'tok',
              client: 'c',
              node: 'n1',
              resumed: false,
              reason: 'new',
              rooms: {},
            },
    });
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 20 });
    const first = await fixture.connection(1);
    await stateOf(client, 'open');
    first.send({ t: 'joined', r: 'kept', o: 10, e: 'E' });
    first.send({ t: 'joined', r: 'lost', o: 3, e: 'E' });
    await until(() => client.rooms.length === 2, 2000, 'joined');
    first.ws.terminate();
    const second = await fixture.connection(2);
    await stateOf(client, 'open');
    expect(client.node).toBe('n2');
    // Replay of "kept" after the welcome: 11 and 12 are new, even though the welcome said 12.
    second.send({ t: 'msg', r: 'kept', o: 11, e: 'E', d: 'k11' });
    second.send({ t: 'msg', r: 'kept', o: 12, e: 'E', d: 'k12' });
    second.send({ t: 'msg', r: 'lost', o: 90, e: 'E', d: 'l90-dup' });
    second.send({ t: 'msg', r: 'lost', o: 91, e: 'E', d: 'l91' });
    await until(() => seen.messages.length >= 3, 2000, 'replay');
    expect(texts(seen)).toEqual(['k11', 'k12', 'l91']);
  });

  it('says in its next hello that a connection was welcomed unavailable, until one is not', async () => {
    let welcomes = 0;
    const fixture = await start({
      welcome: () => {
        welcomes++;
        return {
          t: 'welcome',
          session: 'token-1',
          client: 'client-1',
          node: 'fixture',
          resumed: welcomes === 3,
          // The second connection came while the server could not read the session.
          ...(welcomes === 2 ? { reason: 'unavailable' as const } : {}),
          ...(welcomes === 1 ? { reason: 'new' as const } : {}),
          rooms: {},
          s: 0,
        };
      },
    });
    const { client } = openClient(fixture.url, { backoffBaseMs: 20 });
    for (const n of [1, 2, 3]) {
      const connection = await fixture.connection(n);
      await stateOf(client, 'open');
      if (n < 3) connection.ws.terminate();
    }
    const hellos = fixture.connections.map((connection) => connection.messages[0]);
    expect(hellos.map((hello) => (hello as { u?: 1 }).u)).toEqual([undefined, undefined, 1]);
    fixture.connections[2]!.ws.terminate(); // after a welcome that was not unavailable
    const next = await fixture.connection(4);
    expect((next.messages[0] as { u?: 1 }).u).toBeUndefined();
  });

  it('keeps its room positions through a welcome unavailable, and presents them until a resume gives the rooms back', async () => {
    let welcomes = 0;
    const fixture = await start({
      welcome: (): WelcomeMessage => {
        welcomes++;
        const session = {
          t: 'welcome',
          session: 'token-1',
          client: 'client-1',
          node: 'n',
          s: 0,
        } as const;
        if (welcomes === 1)
          return { ...session, resumed: false, reason: 'new' as const, rooms: {} };
        // Twice while the server could not read the session: the connection is in no room.
        if (welcomes <= 3) {
          return { ...session, resumed: false, reason: 'unavailable' as const, rooms: {} };
        }
        return {
          ...session,
          resumed: true,
          rooms: {
            chat: { recovered: true, o: 44, e: 'E1' },
            news: { recovered: false, reason: 'no-position', o: 9, e: 'E2' },
          },
        };
      },
    });
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 20 });
    const joined: Array<{ room: string; offset?: number }> = [];
    client.on('joined', ({ room, offset }) => joined.push({ room, offset }));
    const first = await fixture.connection(1);
    await stateOf(client, 'open');
    first.send({ t: 'joined', r: 'chat', o: 41, e: 'E1' });
    first.send({ t: 'joined', r: 'old', o: 3, e: 'E3' });
    first.send({ t: 'msg', r: 'chat', o: 42, e: 'E1', d: 'm42' });
    await until(() => seen.messages.length === 1, 2000, 'm42');

    for (const n of [2, 3]) {
      fixture.connections[n - 2]!.ws.terminate();
      const next = await fixture.connection(n);
      expect(next.messages[0]).toMatchObject({
        rooms: { chat: { o: 42, e: 'E1' }, old: { o: 3, e: 'E3' } },
      });
      await until(() => seen.welcomes.length === n, 2000, `welcome ${n}`);
      // This connection is in no room; the session, unread, still is.
      expect(client.rooms).toEqual([]);
      expect(client.position('chat')).toBeUndefined();
      expect(client.snapshot()?.rooms).toEqual({
        chat: { o: 42, e: 'E1' },
        old: { o: 3, e: 'E3' },
      });
    }
    expect(seen.left.sort()).toEqual(['chat', 'old']);
    // Left on purpose meanwhile: its position is not presented any more.
    void client.leave('old').catch(() => undefined);
    await until(() => !('old' in (client.snapshot()?.rooms ?? {})), 2000, 'old dropped');

    fixture.connections[2]!.ws.terminate();
    const fourth = await fixture.connection(4);
    expect(fourth.messages[0]).toEqual({
      t: 'hello',
      session: 'token-1',
      rooms: { chat: { o: 42, e: 'E1' } },
      u: 1,
    });
    await until(() => seen.welcomes.length === 4, 2000, 'the resume');
    expect(client.rooms.sort()).toEqual(['chat', 'news']);
    // Back in the rooms, from where the client was (chat: 43 and 44 follow) or the server says.
    expect(joined.slice(2)).toEqual([
      { room: 'chat', offset: 42 },
      { room: 'news', offset: 9 },
    ]);
    fourth.send({ t: 'msg', r: 'chat', o: 43, e: 'E1', d: 'm43' });
    fourth.send({ t: 'msg', r: 'chat', o: 44, e: 'E1', d: 'm44' });
    await until(() => seen.messages.length === 3, 2000, 'the replay');
    expect(texts(seen)).toEqual(['m42', 'm43', 'm44']);
  });

  it('resumes a saved session given as options.resume', async () => {
    const fixture = await start();
    fixture.sessions.set('saved-token', 'client-saved');
    const { client } = openClient(fixture.url, {
      resume: { session: 'saved-token', rooms: { news: { o: 7, e: 'E9' } } },
    });
    expect(client.state).toBe('resuming');
    const connection = await fixture.connection(1);
    expect(connection.messages[0]).toEqual({
      t: 'hello',
      session: 'saved-token',
      rooms: { news: { o: 7, e: 'E9' } },
    });
    await stateOf(client, 'open');
    expect(client.clientId).toBe('client-saved');
    expect(client.snapshot()).toEqual({
      session: 'saved-token',
      rooms: { news: { o: 7, e: 'E9' } },
      client: 'client-saved',
    });
  });

  it("numbers what it sends above the last number of the saved session, not from the server's record", async () => {
    // The page that saved it sent 41 messages; the server recorded 30 (its node died).
    const fixture = await start({
      welcome: (hello) => ({
        t: 'welcome',
        session: hello.session!,
        client: 'client-saved',
        node: 'fixture',
        resumed: true,
        rooms: {},
        s: 30,
      }),
    });
    const { client } = openClient(fixture.url, {
      resume: { session: 'saved-token', client: 'client-saved', sent: 41 },
    });
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    void client.send('next');
    await until(() => connection.messages.some((m) => m.t === 'msg'), 2000, 'the message');
    expect(connection.messages.find((m) => m.t === 'msg')).toMatchObject({ d: 'next', s: 42 });
    expect(client.snapshot()).toMatchObject({ client: 'client-saved', sent: 42 });
  });
});

describe('room positions and duplicates', () => {
  it('drops a message at or below the last offset of the epoch, and a new epoch starts over', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url);
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    connection.send({ t: 'joined', r: 'r', o: 0, e: 'A' });
    for (const [o, e] of [
      [1, 'A'],
      [2, 'A'],
      [2, 'A'],
      [1, 'A'],
      [3, 'A'],
      [1, 'B'],
      [2, 'B'],
      [2, 'B'],
    ] as const) {
      connection.send({ t: 'msg', r: 'r', o, e, d: `${e}${o}` });
    }
    connection.send({ t: 'msg', d: 'direct' });
    await until(() => seen.messages.at(-1)?.data === 'direct', 2000, 'direct message');
    expect(texts(seen)).toEqual(['A1', 'A2', 'A3', 'B1', 'B2', 'direct']);
    expect(seen.messages[0]!.meta).toEqual({ room: 'r', offset: 1, epoch: 'A' });
    expect(seen.messages.at(-1)!.meta).toEqual({});
    expect(client.position('r')).toEqual({ offset: 2, epoch: 'B' });
  });

  it('says a resync of the direct messages’ stream without a room, and lists no such room', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 20 });
    const resyncs: unknown[] = [];
    const joined: unknown[] = [];
    client.on('resync', (info) => resyncs.push(info));
    client.on('joined', (info) => joined.push(info));
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    const inbox = inboxOf(seen.welcomes[0]!.clientId);
    connection.send({ t: 'joined', r: inbox, o: 3, e: 'E' });
    connection.send({ t: 'resync', r: inbox, o: 9, e: 'F' });
    connection.send({ t: 'msg', r: inbox, o: 10, e: 'F', d: 'after the gap' });
    await until(() => seen.messages.length === 1, 2000, 'the direct message');
    expect(resyncs).toEqual([{ offset: 9, epoch: 'F' }]);
    expect(seen.messages[0]!.meta).toEqual({});
    expect(joined).toEqual([]);
    expect(client.rooms).toEqual([]);
  });

  it('takes a resync position as the new start, and forgets a room it left', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url, { backoffBaseMs: 20 });
    const resyncs: unknown[] = [];
    client.on('resync', (info) => resyncs.push(info));
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    connection.send({ t: 'joined', r: 'a', o: 1, e: 'E' });
    connection.send({ t: 'joined', r: 'b', o: 1, e: 'E' });
    connection.send({ t: 'resync', r: 'a', o: 50, e: 'F' });
    connection.send({ t: 'msg', r: 'a', o: 50, e: 'F', d: 'dup' });
    connection.send({ t: 'msg', r: 'a', o: 51, e: 'F', d: 'a51' });
    connection.send({ t: 'left', r: 'b' });
    await until(() => seen.messages.length === 1 && seen.left.length === 1, 2000, 'resync, left');
    expect(texts(seen)).toEqual(['a51']);
    expect(resyncs).toEqual([{ room: 'a', offset: 50, epoch: 'F' }]);
    expect(client.rooms).toEqual(['a']);
    connection.ws.terminate();
    const second = await fixture.connection(2);
    expect(second.messages[0]).toMatchObject({ rooms: { a: { o: 51, e: 'F' } } });
  });

  it('ignores message types and fields it does not know', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url);
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    connection.ws.send(JSON.stringify({ t: 'future-thing', x: 1 }));
    connection.ws.send(JSON.stringify({ t: 'msg', d: 'hi', extra: { a: 1 } }));
    await until(() => seen.messages.length === 1, 2000, 'message');
    expect(texts(seen)).toEqual(['hi']);
    expect(seen.errors).toEqual([]);
    expect(client.state).toBe('open');
  });

  it('ignores wrong-typed acknowledgement and presence frames', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url);
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    for (const frame of [
      { t: 'rcv', s: '9' },
      { t: 'rcv', s: 1.5 },
      { t: 'presence', r: 'a', m: 'everyone' },
      { t: 'presence', r: 'a', m: [{ u: 7 }] },
      { t: 'pjoin', r: 'a', u: null },
      { t: 'pleave', r: 'a' },
      { t: 'msg', d: 'hi' },
    ]) {
      connection.ws.send(JSON.stringify(frame));
    }
    await until(() => seen.messages.length === 1, 2000, 'message');
    expect(texts(seen)).toEqual(['hi']);
    expect(seen.errors).toEqual([]);
    expect(client.state).toBe('open');
  });

  it('reports a server error message as a ServerError and stays connected', async () => {
    const fixture = await start();
    const { client, seen } = openClient(fixture.url);
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');
    connection.send({ t: 'error', code: 'UNKNOWN_OP', message: 'what is that' });
    await until(() => seen.errors.length === 1, 2000, 'error');
    expect(seen.errors[0]).toMatchObject({ name: 'ServerError', code: 'UNKNOWN_OP' });
    expect(client.state).toBe('open');
  });
});
