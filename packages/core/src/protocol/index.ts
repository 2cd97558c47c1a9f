/**
 * The `wscale.v1` protocol: message types, the codec and the close codes shared by the server and
 * the client (docs/protocol.md is the specification). Bundled into the browser client: nothing
 * exported here may reach a Node built-in or server code.
 *
 * @packageDocumentation
 * @module @wscale/core/protocol
 */
export { ProtocolError } from '../errors.js';
export { CloseCode } from './close-codes.js';
export {
  type Decoded,
  decodeClientFrame,
  decodeServerFrame,
  encodeBinary,
  encodeText,
} from './codec.js';
export * from './messages.js';
