export * from './index.js';
export { type ContractSuiteOptions, createContractSuite } from './suite.js';
