export { type BrokerSuiteOptions, brokerSuite } from './broker-suite.js';
export { type HistorySuiteOptions, historySuite } from './history-suite.js';
export { delay, type SuiteRunner, until } from './runner.js';
export { type StateStoreSuiteOptions, stateStoreSuite } from './state-store-suite.js';
