export { expectRunningNodesKnownOnReady } from './discovery.js';
export { freePort, serviceAvailable } from './free-port.js';
export * from './nats-server.js';
export * from './outage-node.js';
export * from './redis-server.js';
export { settle, WireTap } from './wire-tap.js';
