export {
  type ExecOptions,
  type ExecResult,
  NodeCommandError,
  NodeConnectError,
  type NodeShell,
  SshNode,
} from './connection.js';
export { fingerprint, judgeHostKey, knownHostsName, parseKnownHosts } from './hostkeys.js';
