import { until } from '@wscale/core/testing';
import { WebSocket } from 'ws';
import {
  type ClientCloseInfo,
  type ClientOptions,
  type ClientState,
  type ClientUrl,
  type MessageMeta,
  type Payload,
  type WelcomeInfo,
  WscaleClient,
} from '../../src/index.js';
import { type FixtureBehavior, FixtureServer } from './fixture-server.js';

/** What a client went through, recorded from its events. */
export interface Recorded {
  states: ClientState[];
  messages: Array<{ data: Payload; meta: MessageMeta }>;
  welcomes: WelcomeInfo[];
  closes: ClientCloseInfo[];
  errors: Error[];
  left: string[];
}

/** Clients opened by tests, closed by {@link closeClients} after each. */
const opened: WscaleClient[] = [];

/** Creates a client on the `ws` package (Node 20 has no global WebSocket) and records its events. */
export function openClient(
  url: ClientUrl,
  options: ClientOptions = {},
): { client: WscaleClient; seen: Recorded } {
  const seen: Recorded = {
    states: [],
    messages: [],
    welcomes: [],
    closes: [],
    errors: [],
    left: [],
  };
  const client = new WscaleClient(url, { WebSocket, ...options, autoConnect: false });
  client.on('state', (state) => seen.states.push(state));
  client.on('message', (data, meta) => seen.messages.push({ data, meta }));
  client.on('welcome', (info) => seen.welcomes.push(info));
  client.on('close', (info) => seen.closes.push(info));
  client.on('error', (error) => seen.errors.push(error));
  client.on('left', ({ room }) => seen.left.push(room));
  opened.push(client);
  if (options.autoConnect !== false) client.connect();
  return { client, seen };
}

const servers: FixtureServer[] = [];

/** Starts a fixture server, closed by {@link closeAll}. */
export async function startFixture(
  behavior: Partial<FixtureBehavior> = {},
): Promise<FixtureServer> {
  const server = await FixtureServer.start(behavior);
  servers.push(server);
  return server;
}

/** Closes the clients, then the fixture servers, a test opened (call it in `afterEach`). */
export async function closeAll(): Promise<void> {
  await Promise.all(opened.splice(0).map((client) => client.close()));
  await Promise.all(servers.splice(0).map((server) => server.close()));
}

/** Waits for the client to reach `state`. */
export function stateOf(client: WscaleClient, state: ClientState, timeoutMs = 3000): Promise<void> {
  return until(() => client.state === state, timeoutMs, `state ${state}`);
}

/** The texts of recorded messages. */
export function texts(seen: Recorded): string[] {
  return seen.messages.map(({ data }) =>
    typeof data === 'string' ? data : `<${data.length} bytes>`,
  );
}
