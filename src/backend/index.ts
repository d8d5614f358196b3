export { drbdLinks, type PlannedCommand, plannedCommands, simSpecOf } from './plan.js';
export { SSH_GRACE_MS, type SshBackend, type SshBackendOptions, sshEffects } from './ssh.js';
