export {
  type Decoded,
  decodeClientFrame,
  decodeServerFrame,
  encodeBinary,
  encodeText,
  ProtocolViolation,
} from './codec.js';
export * from './messages.js';
