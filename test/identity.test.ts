import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IDENTITY_KEY, newIdentityKey, restateIdentityKey } from '../src/restate/identity.js';
import { cli } from './helpers.js';
import { tempDir } from './tmp.js';

/** Request signing: the name Restate gives a public key, and a worker that must not run unsigned requests. */

// The ed25519 key whose seed is the bytes 1 to 32, and the name the Restate server 1.7.12 logged
// (`Loaded request identity key`, kid) when started with it as its request identity key.
const SEEDED = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g
-----END PRIVATE KEY-----
`;
const SEEDED_KID = 'publickeyv1_9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj';

describe("Restate's request identity keys", () => {
  it('names a key as the Restate server does, from either half', () => {
    expect(restateIdentityKey(SEEDED)).toBe(SEEDED_KID);
    const pub = createPublicKey(createPrivateKey(SEEDED)).export({ type: 'spki', format: 'pem' }).toString();
    expect(restateIdentityKey(pub)).toBe(SEEDED_KID);
    expect(SEEDED_KID).toMatch(IDENTITY_KEY);
  });

  it('writes a new private key only its owner can read', () => {
    const file = join(tempDir(), 'restate.pem');
    const kid = newIdentityKey(file);
    expect(kid).toMatch(IDENTITY_KEY);
    expect(restateIdentityKey(readFileSync(file, 'utf8'))).toBe(kid);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('refuses a key of another kind', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    expect(() => restateIdentityKey(rsa)).toThrow(/ed25519 key, not rsa/);
  });
});

describe('drbd-migrate worker refuses to serve unsigned requests where others reach it', () => {
  const world = () => {
    const file = join(tempDir(), 'w.json');
    writeFileSync(file, '{}');
    return file;
  };

  it('listening beyond loopback without --identity-key', async () => {
    const r = await cli('worker', '--world', world(), '--listen', '0.0.0.0');
    expect(r.code).toBe(2);
    expect(r.stderr.join('\n')).toMatch(
      /a worker listening on 0\.0\.0\.0 would run any request that reaches it: give --identity-key/,
    );
  });

  it('a --listen that is not an address, an --identity-key that is not a key', async () => {
    const bad = await cli('worker', '--world', world(), '--listen', 'somewhere');
    expect(bad.code).toBe(2);
    expect(bad.stderr.join('\n')).toMatch(/bad --listen 'somewhere': expected an IP address/);
    const file = join(tempDir(), 'not-a-key');
    writeFileSync(file, 'hello');
    const key = await cli('worker', '--world', world(), '--identity-key', file);
    expect(key.code).toBe(2);
    expect(key.stderr.join('\n')).toMatch(
      /bad --identity-key '.*not-a-key': expected publickeyv1_… or a PEM file/,
    );
  });
});
