import { expectTypeOf, it } from 'vitest';
import { WebSocket as WsWebSocket } from 'ws';
import type { WebSocketConstructor } from '../src/index.js';

it('accepts the WebSocket of browsers, of Node and of the ws package', () => {
  expectTypeOf(WsWebSocket).toExtend<WebSocketConstructor>();
  expectTypeOf(globalThis.WebSocket).toExtend<WebSocketConstructor>();
});
