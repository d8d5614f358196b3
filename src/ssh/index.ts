export {
  type ExecOptions,
  type ExecResult,
  NodeCommandError,
  NodeConnectError,
  type NodeShell,
  SSH_CONNECT_TIMEOUT_MS,
  SshNode,
} from './connection.js';
export { fingerprint, judgeHostKey, knownHostsName, parseKnownHosts } from './hostkeys.js';
export { shellLine, shellQuote } from './shell.js';
