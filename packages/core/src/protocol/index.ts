/**
 * The `wscale.v1` protocol: message types and the codec shared by the server and the client
 * (docs/protocol.md is the specification).
 *
 * @packageDocumentation
 * @module @wscale/core/protocol
 */
export {
  type Decoded,
  decodeClientFrame,
  decodeServerFrame,
  encodeBinary,
  encodeText,
  ProtocolViolation,
} from './codec.js';
export * from './messages.js';
