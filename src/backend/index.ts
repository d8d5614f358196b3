export { drbdLinks, type PlannedCommand, plannedCommands, simSpecOf } from './plan.js';
export { type SshBackend, type SshBackendOptions, sshEffects } from './ssh.js';
