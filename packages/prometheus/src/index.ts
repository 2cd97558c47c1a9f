/**
 * Operations for wscale nodes: Prometheus metrics on `prom-client` (`collectMetrics`), latency of
 * the state store and history (`instrumentStateStore`, `instrumentHistory`), and a live,
 * read-only page of the whole cluster (`clusterView`).
 *
 * @packageDocumentation
 * @module @wscale/prometheus
 */
export { type ClusterViewOptions, clusterView } from './cluster-view.js';
export {
  type CollectMetricsOptions,
  collectMetrics,
  type WscaleMetrics,
} from './collect-metrics.js';
export { instrumentHistory, instrumentStateStore } from './instrument.js';
