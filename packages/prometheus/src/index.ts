/**
 * Operations for wscale nodes: Prometheus metrics on `prom-client` (`collectMetrics`), latency of
 * the state store and history (`instrumentStateStore`, `instrumentHistory`), and a live,
 * read-only page of the whole cluster (`clusterView`, also at `@wscale/prometheus/cluster-view`
 * without prom-client).
 *
 * @packageDocumentation
 * @module @wscale/prometheus
 */
export { type ClusterViewOptions, clusterView } from './cluster-view.js';
export { collectMetrics, type MetricsOptions } from './collect-metrics.js';
export { type InstrumentOptions, instrumentHistory, instrumentStateStore } from './instrument.js';
