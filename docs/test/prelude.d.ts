// What a documentation block may use without creating it: each name stands for what the text
// around the block says it is. Declared once here, so that every block is type-checked as part of
// a program that made them (docs/README.md explains the markers).
import type { NatsConnection } from '@nats-io/transport-node';
import type { WscaleClient } from '@wscale/client';
import type { Broker, History, ScaledWebSocketServer, StateStore } from '@wscale/core';

declare global {
  /** The broker every node shares: `MemoryBroker`, `ClusterBroker`, `RedisBroker` or `NatsBroker`. */
  const broker: Broker;
  /** The state store every node shares, e.g. a `RedisStateStore`. */
  const stateStore: StateStore;
  /** The history store of the rooms that keep history, e.g. a `RedisHistory`. */
  const history: History;
  /** The store of the nodes' `directHistory`, where sessions keep their direct messages. */
  const directHistory: History;
  /** A node created earlier in the text. */
  const wss: ScaledWebSocketServer;
  /** The id of a client connected to some node (its `client.id`). */
  const someClientId: string;
  /** An open NATS connection (`connect()` of `@nats-io/transport-node`). */
  const connection: NatsConnection;
  /** The application's own way to get a short-lived token for the WebSocket URL. */
  function getToken(): Promise<string>;
  /** The application's logger (pino, winston, console…). */
  const log: { warn(fields: object, message: string): void };
  /** The application's winston logger (winston's methods take the message first). */
  const winstonLogger: Record<
    'debug' | 'info' | 'warn' | 'error',
    (message: string, meta: object) => void
  >;
  /** The application's metrics client (prom-client, StatsD…). */
  const metrics: { set(name: string, value: number): void };
  /** An adapter author's classes and the address of their test server. */
  const MyBroker: new (options: { url: string }) => Broker;
  const MyStore: new (options: { url: string; ttlMs: number }) => StateStore;
  const MyHistory: new (options: { url: string; maxEntries: number }) => History;
  const url: string;
  /** A `@wscale/client` client the page created earlier in the text. */
  const client: WscaleClient;
  /** The page's events and `sessionStorage`, for the client's browser blocks (no DOM types here). */
  function addEventListener(
    type: 'pagehide' | 'pageshow',
    listener: (event: { persisted: boolean }) => void,
  ): void;
  const sessionStorage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  interface Storage {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
    removeItem(key: string): void;
  }
}
