import type { IncomingMessage, ServerResponse } from 'node:http';
import type { QueryOptions, ScaledWebSocketServer } from '@wscale/core';
import { clusterViewPage } from './cluster-view-page.js';

/** Options of {@link clusterView}. */
export interface ClusterViewOptions extends QueryOptions {
  /** How often the page asks for fresh numbers, in ms. @default 2000 */
  refreshMs?: number;
}

/**
 * A read-only web page of the whole cluster: every node with its clients, rooms, message rates
 * and broker status, nodes that do not answer, and the last resumes, refreshed live. Returns a
 * request handler to mount on your own HTTP server, behind your own authentication: it shows
 * node and client ids. It answers `<mount>/stats.json` with the numbers (`wss.fetchStats()`)
 * and every other path with the page.
 *
 * @example
 * ```ts
 * app.use('/cluster', requireAdmin, clusterView(wss));
 * ```
 */
export function clusterView<Identity, Data extends object>(
  wss: ScaledWebSocketServer<Identity, Data>,
  options: ClusterViewOptions = {},
): (request: IncomingMessage, response: ServerResponse) => void {
  const page = clusterViewPage(options.refreshMs ?? 2000);
  const query: QueryOptions =
    options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  return (request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (!path.endsWith('/stats.json')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
      return;
    }
    wss.fetchStats(query).then(
      ({ nodes, missing }) => {
        const body = JSON.stringify({ node: wss.nodeId, nodes, missing });
        response
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(body);
      },
      (error: Error) => {
        response.writeHead(503, { 'content-type': 'text/plain' }).end(error.message);
      },
    );
  };
}
