import { createHash, createHmac } from 'node:crypto';

/**
 * Host key checks, done before any command runs: a node's key must match the pinned SHA256
 * fingerprint or a known_hosts entry. An unknown key and a changed key are both refused; nothing is
 * ever trusted on first use.
 */

/** The OpenSSH fingerprint of a raw (wire-format) public key, as `ssh-keygen -lf` prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** How known_hosts names a host: the bare address on port 22, `[address]:port` otherwise. */
export const knownHostsName = (address: string, port: number) =>
  port === 22 ? address : `[${address}]:${port}`;

function hostMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [salt, hash] = pattern.slice(3).split('|');
    if (salt === undefined || hash === undefined) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  // Comma-separated patterns; a leading ! negates; * and ? are wildcards.
  let matched = false;
  for (const p of pattern.split(',')) {
    const negated = p.startsWith('!');
    const glob = negated ? p.slice(1) : p;
    const re = new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    if (re.test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

export interface KnownHostsEntry {
  marker: '@revoked' | '@cert-authority' | null;
  hosts: string;
  keyType: string;
  key: Buffer;
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0] === '@revoked' || fields[0] === '@cert-authority' ? fields.shift() : null;
    const [hosts, keyType, key] = fields;
    if (hosts === undefined || keyType === undefined || key === undefined) continue;
    entries.push({
      marker: (marker ?? null) as KnownHostsEntry['marker'],
      hosts,
      keyType,
      key: Buffer.from(key, 'base64'),
    });
  }
  return entries;
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: string };

export interface HostKeyPolicy {
  /** SHA256:… as ssh-keygen -lf prints it. */
  pinned?: string | undefined;
  /** The text of a known_hosts file, and its path for messages. */
  knownHosts?: { path: string; text: string } | undefined;
}

/** Decides about the key a host presented; the reason says what happened and what to do. */
export function judgeHostKey(
  key: Buffer,
  host: { node: string; address: string; port: number },
  policy: HostKeyPolicy,
): HostKeyVerdict {
  const seen = fingerprint(key);
  const where = `${host.address}:${host.port}`;
  if (policy.pinned !== undefined) {
    if (seen === policy.pinned) return { ok: true };
    return {
      ok: false,
      reason:
        `host key of ${where} CHANGED: it presented ${seen}, the cluster file pins ${policy.pinned}. ` +
        'Refusing to connect (this may be a man-in-the-middle). If the node was reinstalled, ' +
        `check its key on the console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update hostKey`,
    };
  }
  if (policy.knownHosts !== undefined) {
    const name = knownHostsName(host.address, host.port);
    const entries = parseKnownHosts(policy.knownHosts.text).filter(
      (e) => e.marker !== '@cert-authority' && hostMatches(e.hosts, name),
    );
    if (entries.some((e) => e.marker === '@revoked' && e.key.equals(key))) {
      return {
        ok: false,
        reason: `host key ${seen} of ${where} is marked @revoked in ${policy.knownHosts.path}`,
      };
    }
    const listed = entries.filter((e) => e.marker === null);
    if (listed.some((e) => e.key.equals(key))) return { ok: true };
    if (listed.length > 0) {
      return {
        ok: false,
        reason:
          `host key of ${where} CHANGED: it presented ${seen}, which ${policy.knownHosts.path} does not list for ${name}. ` +
          'Refusing to connect (this may be a man-in-the-middle); verify the new key before replacing the entry',
      };
    }
    return {
      ok: false,
      reason:
        `host key ${seen} of ${where} is unknown: ${policy.knownHosts.path} has no entry for ${name}. ` +
        `Verify it on the node (ssh-keygen -lf) and add it (ssh-keyscan -p ${host.port} ${host.address} >> ${policy.knownHosts.path}) or pin it as hostKey`,
    };
  }
  return {
    ok: false,
    reason: `no hostKey or knownHosts for ${where}: a host key is never trusted on first use`,
  };
}
