/**
 * Conformance suites that every `Broker`, `StateStore` and `History` implementation must pass,
 * and the small helpers they use.
 *
 * @packageDocumentation
 * @module @wscale/core/testing
 */
export { type BrokerSuiteOptions, brokerSuite } from './broker-suite.js';
export { type HistorySuiteOptions, historySuite } from './history-suite.js';
export { delay, type SuiteRunner, until } from './runner.js';
export { type StateStoreSuiteOptions, stateStoreSuite } from './state-store-suite.js';
