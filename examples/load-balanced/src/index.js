// @ts-check
// What examples/haproxy and examples/nginx use: the stack (Redis, three nodes from src/node.js,
// their load balancer in front) and its command line.
export { runStack } from './run.js';
export { startStack } from './stack.js';

/** @typedef {import('./stack.js').Balancer} Balancer */
/** @typedef {import('./stack.js').Stack} Stack */
/** @typedef {import('./stack.js').StackOptions} StackOptions */
