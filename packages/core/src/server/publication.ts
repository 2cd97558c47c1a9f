import { Buffer } from 'node:buffer';
import { BaseBroker } from '../adapters/base-broker.js';
import { STAMP_BYTES } from '../adapters/publish-stamp.js';
import type { Broker, History, HistoryPosition } from '../contracts.js';
import { MessageTooLargeError } from '../errors.js';
import {
  type BroadcastHeader,
  BusKind,
  type BusMessage,
  type DirectHeader,
  type DirectOperation,
  encodeBusFrame,
  messageFrameSize,
} from '../mesh/bus-codec.js';
import type { PublishFrame } from '../mesh/node-mesh.js';
import { CloseCode } from '../protocol/close-codes.js';
import { inboxOf, isInbox } from '../protocol/messages.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { prepareMessage, type Sendable, type SendOptions } from '../protocol/payload.js';
import { historyMatcher } from '../rooms/history-rules.js';
import { SessionTokens } from '../sessions/session-token.js';
import { checkSessionRoom, type SessionChange } from '../sessions/sessions.js';
import { checkClose, checkName, checkNames } from '../util/arguments.js';
import type { HistoryRule } from './options.js';
import type { RemoteClient } from './server-types.js';

/**
 * What one `send()` becomes before it goes to the broker: the message framed once and the header
 * the other nodes read, with its place in the history when it keeps one. Nodes and `Publisher`
 * build their messages here alike, so that a message is the same whoever sent it.
 */
export interface Publication {
  message: Outgoing;
  header: BroadcastHeader;
}

/** Where a room keeps its history: the rules' store, or `directHistory` for a session's stream. */
export function historyLookup(
  rules: HistoryRule[],
  directHistory: History | undefined,
): (room: string) => History | undefined {
  const historyOf = historyMatcher(rules);
  return (room) => (isInbox(room) ? directHistory : historyOf(room));
}

/** Sends a direct operation on client `id`, with its message for a `send`. */
export type SendDirect = (
  id: string,
  operation: DirectOperation,
  message?: Outgoing,
) => Promise<void>;

/**
 * The operations on one client, each a direct operation sent by `direct`. One object per
 * `client(id)`, its methods shared: `wss.client(id).send()` runs for every direct message.
 */
export class RemoteClientById implements RemoteClient {
  readonly #id: string;
  readonly #direct: SendDirect;

  constructor(id: string, direct: SendDirect) {
    this.#id = id;
    this.#direct = direct;
  }

  send(data: Sendable, options?: SendOptions): Promise<void> {
    let message: Outgoing;
    try {
      message = prepareMessage(data, options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#direct(this.#id, SEND, message);
  }

  join(room: string): Promise<void> {
    return this.#direct(this.#id, { o: 'join', a: room });
  }

  leave(room: string): Promise<void> {
    return this.#direct(this.#id, { o: 'leave', a: room });
  }

  close(code: number = CloseCode.Normal, reason = ''): Promise<void> {
    return this.#direct(this.#id, { o: 'close', a: [code, reason] });
  }
}

/** The operation of every `send`: it carries nothing of its own. */
const SEND: DirectOperation = Object.freeze({ o: 'send' });

/**
 * The rooms of a broadcast, grouped as they are sent: all together, or one by one when several of
 * them keep history (each history room numbers its own messages, so each gets its own copy).
 */
function roomGroups(
  rooms: readonly string[],
  historyOf: (room: string) => History | undefined,
): (readonly string[])[] {
  if (rooms.length > 1 && rooms.some((room) => historyOf(room) !== undefined)) {
    return rooms.map((room) => [room]);
  }
  return [rooms];
}

/**
 * A broadcast to `rooms` (everyone when there is none), before any history places it; throws
 * {@link MessageTooLargeError} if it is more than the broker carries ({@link checkSize}).
 */
function publicationOf(
  origin: string,
  rooms: readonly string[],
  except: readonly string[],
  data: Sendable,
  options: SendOptions | undefined,
  limit: number | undefined,
): Publication {
  const room = rooms.length === 1 ? rooms[0] : undefined;
  const skip = except.length > 0 ? new Set(except) : undefined;
  const message = prepareMessage(data, options, room, skip);
  const header: BroadcastHeader = { n: origin };
  if (rooms.length > 0) header.r = rooms as string[];
  if (except.length > 0) header.x = except as string[];
  checkSize(limit, { kind: BusKind.Broadcast, header }, message);
  return { message, header };
}

/** Whether none of `rooms` keeps history: the broadcast is then published as it is built. */
function keepsNoHistory(
  rooms: readonly string[],
  historyOf: (room: string) => History | undefined,
): boolean {
  for (let i = 0; i < rooms.length; i++) if (historyOf(rooms[i]!) !== undefined) return false;
  return true;
}

/** A publication to one group of {@link roomGroups}, placed in its room's history if it keeps one. */
async function placed(
  publication: Publication,
  rooms: readonly string[],
  historyOf: (room: string) => History | undefined,
): Promise<Publication> {
  const room = rooms.length === 1 ? rooms[0] : undefined;
  const history = room === undefined ? undefined : historyOf(room);
  if (room === undefined || history === undefined) return publication;
  const { message, header } = publication;
  const position = await history.append(room, message.historyPayload());
  publication.message = message.at(room, position.offset, position.epoch);
  header.s = position.offset;
  header.e = position.epoch;
  return publication;
}

/**
 * Builds the publications of a broadcast, one per group of {@link roomGroups}, and hands each to
 * `publish`; resolves once every one of them is published. Nodes and `Publisher` broadcast alike.
 * Rooms that keep no history (the common case) are published at once: no `async` step, promise or
 * closure of its own between `send()` and the broker.
 */
export function publishBroadcast(
  origin: string,
  rooms: readonly string[],
  except: readonly string[],
  data: Sendable,
  options: SendOptions | undefined,
  historyOf: (room: string) => History | undefined,
  /** What the broker carries ({@link Broker.maxPayloadBytes}). */
  limit: number | undefined,
  publish: (group: readonly string[], publication: Publication) => Promise<void>,
): Promise<void> {
  try {
    checkNames(rooms, 'room');
    checkNames(except, 'client id');
    if (keepsNoHistory(rooms, historyOf)) {
      return publish(rooms, publicationOf(origin, rooms, except, data, options, limit));
    }
    // Every group built (and its size checked) before any is kept in a history: one too large
    // sends none. Each room's append is its own: one that fails leaves the others sent.
    const groups = roomGroups(rooms, historyOf).map((group) => ({
      group,
      publication: publicationOf(origin, group, except, data, options, limit),
    }));
    const published = groups.map(async ({ group, publication }) =>
      publish(group, await placed(publication, group, historyOf)),
    );
    return Promise.all(published).then(nothing);
  } catch (error) {
    return Promise.reject(error);
  }
}

function nothing(): void {}

/** The header of a direct operation on client `id`, sent by node `origin`. */
export function directHeader(origin: string, id: string, operation: DirectOperation): DirectHeader {
  // Built field by field, in the order the bus codec decodes it: one shape, and no object spread
  // (a clone of a small object costs more than the whole header) on every message.
  if (operation.o === 'send') return { o: 'send', n: origin, c: id };
  if (operation.o === 'close') return { o: 'close', a: operation.a, n: origin, c: id };
  return { o: operation.o, a: operation.a, n: origin, c: id };
}

/** A join, leave or close for a `wscale.v1` session (a raw client has no record to keep it in). */
export type SessionChangeHeader = DirectHeader & SessionChange;

/**
 * Refuses an operation no client can take: on an id that is no string, a join or leave of a room
 * that is none, a close a connection cannot be closed with, a join of a `wscale.v1` session to a
 * room it cannot be in (see `checkSessionRoom`).
 */
export function checkDirect(header: DirectHeader): void {
  checkName(header.c, 'client id');
  if (header.o === 'close') checkClose(...header.a);
  else if (header.o !== 'send') checkName(header.a, 'room');
  if (header.o === 'join' && SessionTokens.isSessionId(header.c)) checkSessionRoom(header.a);
}

/** Whether an operation is a join, leave or close for a `wscale.v1` session. */
export function isSessionChange(header: DirectHeader): header is SessionChangeHeader {
  return header.o !== 'send' && SessionTokens.isSessionId(header.c);
}

/**
 * Where a join starts in a room that keeps history: the resume of a session that was between
 * connections replays what the room got after it. `undefined` for a leave, or a room without.
 */
export function joinedAt(
  change: SessionChangeHeader,
  historyOf: (room: string) => History | undefined,
): Promise<HistoryPosition | undefined> | undefined {
  return change.o === 'join' ? historyOf(change.a)?.position(change.a) : undefined;
}

/**
 * Puts where a join of a room with history was made into its header (the `position` field, which
 * only a kept direct message used): the node holding the client replays what the room got since,
 * so a broadcast sent once the join resolved reaches the client, however late the join arrives.
 */
export function markJoinedAt(header: DirectHeader, at: HistoryPosition | undefined): void {
  if (at === undefined) return;
  header.s = at.offset;
  header.e = at.epoch;
}

/** Where a join was made, as {@link markJoinedAt} put it in its header. */
export function joinedFrom(header: DirectHeader): HistoryPosition | undefined {
  return header.o === 'join' && header.s !== undefined && header.e !== undefined
    ? { offset: header.s, epoch: header.e }
    : undefined;
}

/**
 * Whether a direct message is first kept in the session's stream: a message that is not volatile,
 * to a `wscale.v1` session, when `directHistory` is given (a client that is away gets it when it
 * resumes). Everything else goes without waiting for any store.
 */
export function keepsDirect(
  id: string,
  message: Outgoing | undefined,
  directHistory: History | undefined,
): directHistory is History {
  return (
    message !== undefined &&
    !message.volatile &&
    directHistory !== undefined &&
    SessionTokens.isSessionId(id)
  );
}

/**
 * A direct message kept in the session's stream first (the caller checked {@link keepsDirect}):
 * `header` gets its place there, and so does the message returned.
 */
export async function keptDirect(
  header: DirectHeader,
  message: Outgoing,
  directHistory: History,
): Promise<Outgoing> {
  const room = inboxOf(header.c);
  const position = await directHistory.append(room, message.historyPayload());
  header.r = [room];
  header.s = position.offset;
  header.e = position.epoch;
  return message.at(room, position.offset, position.epoch);
}

/**
 * Bytes a message's frame leaves free under the broker's limit when it is first sent: for the
 * broker's stamp, its place in a history (an offset and an epoch) and the fields nodes add as they
 * pass a direct message on (two node ids and a count).
 */
const HEADROOM = 256;

/**
 * Throws {@link MessageTooLargeError} unless the frame of `frame` carrying `message`, with
 * {@link HEADROOM} to spare, fits what the broker carries (`limit`; none: anything). Checked
 * before anything is done with a message: before a history keeps it (kept, then refused, it would
 * be replayed on resume to clients that never had it live) and before a client of this node gets
 * it (whether a message is too large does not depend on where its clients are).
 */
export function checkSize(
  limit: number | undefined,
  frame: Extract<BusMessage, { kind: BusKind.Broadcast | BusKind.Direct }>,
  message: Outgoing | undefined,
): void {
  if (limit === undefined) return;
  const size = messageFrameSize(frame, message?.bytes.length ?? 0);
  if (size + HEADROOM > limit) {
    throw new MessageTooLargeError(
      `a message framed in ${size} bytes, with ${HEADROOM} more kept free for its routing, is more than the broker carries (${limit})`,
    );
  }
}

/** The bytes of a direct operation that carries no message. */
export const NO_BYTES = Buffer.alloc(0);

/**
 * How a node or a `Publisher` publishes frames on `broker`: while it stamps what it publishes as
 * {@link BaseBroker} does (its `publish` not overridden or replaced, which is checked at every
 * frame), each frame is encoded with room for the stamp in front and stamped there, not copied
 * behind a stamp.
 */
export function framePublisher(broker: Broker): PublishFrame {
  const base = broker instanceof BaseBroker ? broker : undefined;
  // A `BaseBroker` whose `publish` was replaced still stamps behind the frame.
  const stamp = base === undefined ? 0 : STAMP_BYTES;
  return (topic, message, payload, flags) =>
    base !== undefined && base.publish === STAMPING_PUBLISH
      ? base.publishInPlace(
          topic,
          carried(broker, encodeBusFrame(message, payload, flags, STAMP_BYTES), 0),
        )
      : broker.publish(topic, carried(broker, encodeBusFrame(message, payload, flags), stamp));
}

/**
 * `frame`, if the broker carries it with `added` bytes more (a stamp); else throws
 * {@link MessageTooLargeError}, synchronously: nothing was sent.
 */
function carried(broker: Broker, frame: Uint8Array, added: number): Uint8Array {
  const limit = broker.maxPayloadBytes;
  if (limit !== undefined && frame.length + added > limit) {
    throw new MessageTooLargeError(
      `a message framed in ${frame.length + added} bytes is more than the broker carries (${limit})`,
    );
  }
  return frame;
}

const STAMPING_PUBLISH = BaseBroker.prototype.publish;
