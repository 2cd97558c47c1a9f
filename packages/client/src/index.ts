/**
 * The `wscale.v1` client for browsers and Node: reconnect with backoff and jitter, session resume,
 * exact recovery of missed messages, joins and acknowledged requests.
 *
 * @packageDocumentation
 * @module @wscale/client
 */
export type {
  NotRecoveredReason,
  NotResumedReason,
  Position,
  ProtocolErrorCode,
  WelcomeRoom,
} from '@wscale/core/protocol';
export { CloseCode, PROTOCOL } from '@wscale/core/protocol';
export { backoffDelay } from './backoff.js';
export {
  type ClientCloseInfo,
  type ClientState,
  type ClientUrl,
  createClient,
  type MessageMeta,
  type Payload,
  type WelcomeInfo,
  WscaleClient,
  type WscaleClientEvents,
} from './client.js';
export { type CloseInfo, FINAL_CLOSE_CODES, shouldReconnect } from './close-policy.js';
export type { EventMap, TypedEmitter } from './emitter.js';
export {
  ClientClosedError,
  ClientError,
  type ClientErrorCode,
  DisconnectedError,
  InvalidArgumentError,
  InvalidOptionError,
  MessageTooLargeError,
  ProtocolError,
  QueueFullError,
  ServerError,
  TimeoutError,
} from './errors.js';
export { browserNetwork, type NetworkEventTarget, type NetworkSignal } from './network.js';
export type { ClientOptions, SessionSnapshot } from './options.js';
export type { AckPayload } from './pending-requests.js';
export {
  type PresenceMember,
  PresenceView,
  type PresenceViewEvents,
} from './presence-view.js';
export type {
  SocketCloseEvent,
  SocketMessageEvent,
  WebSocketConstructor,
  WebSocketLike,
} from './socket.js';
