import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';

/**
 * Request signing: the Restate server signs each request to a worker with an ed25519 private key
 * (its `request-identity-private-key-pem-file`), and a worker given the public key refuses any
 * request not signed with it. Restate names a public key `publickeyv1_` and the base58 of its 32
 * bytes; its server logs that name (`kid`) when it loads the private key.
 */

export const IDENTITY_KEY = /^publickeyv1_[1-9A-HJ-NP-Za-km-z]{32,44}$/;

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

function base58(bytes: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % 58n)]! + out;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    out = `1${out}`;
  }
  return out;
}

/** Restate's name of the public half of an ed25519 key, from a PEM of either half. */
export function restateIdentityKey(pem: string): string {
  const key = /PRIVATE KEY/.test(pem) ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`Restate signs requests with an ed25519 key, not ${key.asymmetricKeyType ?? 'this key'}`);
  }
  const { x } = key.export({ format: 'jwk' });
  return `publickeyv1_${base58(Buffer.from(x!, 'base64url'))}`;
}

/**
 * Writes a new private key (PEM, readable by its owner only) for a Restate server to sign with;
 * returns the public key's name, for the workers.
 */
export function newIdentityKey(privateKeyFile: string): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(privateKeyFile, pem, { mode: 0o600 });
  return restateIdentityKey(pem);
}
