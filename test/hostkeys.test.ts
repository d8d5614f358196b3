import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint, judgeHostKey } from '../src/ssh/index.js';

const key = (seed: string) =>
  Buffer.concat([Buffer.from('\0\0\0\x0bssh-ed25519\0\0\0\x20'), Buffer.from(seed.padEnd(32, '.'))]);
const A = key('node-a');
const B = key('node-b');
const host = { node: 'node-a', address: '10.99.0.1', port: 22 };
const line = (name: string, k: Buffer) => `${name} ssh-ed25519 ${k.toString('base64')}`;
const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
};

describe('host keys: never trusted on first use', () => {
  it('accepts the pinned fingerprint and refuses any other key as CHANGED', () => {
    expect(judgeHostKey(A, host, { pinned: fingerprint(A) })).toEqual({ ok: true });
    const refused = judgeHostKey(B, host, { pinned: fingerprint(A) });
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.reason).toMatch(/CHANGED: it presented SHA256:.* pins SHA256:/);
  });

  it('checks known_hosts entries, plain, hashed and with a port', () => {
    const kh = (text: string) => ({ knownHosts: { path: '/k', text } });
    expect(judgeHostKey(A, host, kh(line('10.99.0.1', A)))).toEqual({ ok: true });
    expect(judgeHostKey(A, host, kh(line(hashed('10.99.0.1'), A)))).toEqual({ ok: true });
    expect(judgeHostKey(A, { ...host, port: 2222 }, kh(line('[10.99.0.1]:2222', A)))).toEqual({ ok: true });
    expect(judgeHostKey(A, { ...host, port: 2222 }, kh(line('10.99.0.1', A))).ok).toBe(false);
  });

  it('tells an unknown host from a changed key, and honours @revoked', () => {
    const kh = (text: string) => ({ knownHosts: { path: '/k', text } });
    const unknown = judgeHostKey(A, host, kh(line('10.99.0.2', A)));
    expect(!unknown.ok && unknown.reason).toMatch(/unknown: \/k has no entry for 10\.99\.0\.1/);
    const changed = judgeHostKey(B, host, kh(line('10.99.0.1', A)));
    expect(!changed.ok && changed.reason).toMatch(/CHANGED/);
    const revoked = judgeHostKey(
      A,
      host,
      kh(`@revoked * ssh-ed25519 ${A.toString('base64')}\n${line('10.99.0.1', A)}`),
    );
    expect(!revoked.ok && revoked.reason).toMatch(/@revoked/);
  });

  it('refuses when the cluster file gives neither', () => {
    expect(judgeHostKey(A, host, {}).ok).toBe(false);
  });
});
