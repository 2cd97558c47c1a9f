import type { ScaledWebSocketServer, StateStore } from '@wscale/core';
import {
  type ClientMessage,
  decodeServerFrame,
  encodeBinary,
  encodeText,
  PROTOCOL,
  type ServerMessage,
  type WelcomeMessage,
} from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { WebSocket } from 'ws';
import { urlOf } from './nodes.js';

/**
 * A bare `wscale.v1` peer written from the spec: it sends exactly the frames a test gives it and
 * records every frame it receives, so the server's side of the protocol is tested as any
 * other-language client would see it.
 */
export class V1Peer {
  readonly ws: WebSocket;
  readonly received: Array<{ message: ServerMessage; binary?: Uint8Array }> = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(server: ScaledWebSocketServer, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(urlOf(server), [PROTOCOL], { headers });
    this.ws.on('message', (data: Buffer, isBinary) => {
      this.received.push(decodeServerFrame(isBinary ? new Uint8Array(data) : data.toString()));
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => undefined);
  }

  /** Opens a connection and says hello; resolves with the welcome. */
  static async connect(
    server: ScaledWebSocketServer,
    hello: Omit<Extract<ClientMessage, { t: 'hello' }>, 't'> = {},
    headers: Record<string, string> = {},
  ): Promise<{ peer: V1Peer; welcome: WelcomeMessage }> {
    const peer = new V1Peer(server, headers);
    await peer.opened;
    peer.send({ t: 'hello', ...hello });
    const welcome = (await peer.next('welcome')) as WelcomeMessage;
    return { peer, welcome };
  }

  send(message: ClientMessage, binary?: Uint8Array): void {
    this.ws.send(binary === undefined ? encodeText(message) : encodeBinary(message, binary));
  }

  /** All messages of one type received so far. */
  all<T extends ServerMessage['t']>(type: T): Array<Extract<ServerMessage, { t: T }>> {
    return this.received
      .map((entry) => entry.message)
      .filter((message): message is Extract<ServerMessage, { t: T }> => message.t === type);
  }

  /** Waits for the first message of a type not yet taken by an earlier `next`. */
  async next<T extends ServerMessage['t']>(
    type: T,
    timeoutMs = 3000,
  ): Promise<Extract<ServerMessage, { t: T }>> {
    const index = this.#taken.get(type) ?? 0;
    await until(() => this.all(type).length > index, timeoutMs, `a "${type}" message`);
    this.#taken.set(type, index + 1);
    return this.all(type)[index]!;
  }

  /** Texts of the `msg` messages of a room, in arrival order. */
  texts(room?: string): string[] {
    return this.all('msg')
      .filter((message) => message.r === room)
      .map((message) => message.d ?? '');
  }

  readonly #taken = new Map<string, number>();
}

/**
 * Waits until the node that held a session recorded its close (`live: false`; it notices a drop a
 * moment later), under the default `topicPrefix`.
 */
export async function recordedClose(store: StateStore, clientId: string): Promise<void> {
  await until(
    async () => {
      const record = await store.get(`wscale:session:${clientId}`);
      return record !== undefined && JSON.parse(record.value).live === false;
    },
    3000,
    'the close to be recorded',
  );
}
