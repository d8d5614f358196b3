import { createContractSuite, simWorld } from '../src/testing/contract.js';

// Every path generated from the machines, replayed on the simulated cluster: the same kit a user
// points at their own backend (README: "Test your own backend").
createContractSuite({ name: 'simulated cluster', makeWorld: (recipe) => simWorld(recipe) });
