// One-time config tokens. A token is HMAC-SHA256(server key, host uid, attempt, expiry): 256 bits
// no one can predict without the key, derived rather than stored, so the same provisioning attempt
// yields the same URL after a controller restart (the expiry is persisted in status, and binds the
// token: a new mint, even for a reused attempt number, has a new expiry and so a new token).
// Only sha256(token) is ever stored (status.talos.tokenHash).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isAlreadyExists, isNotFound } from '../runtime/errors.ts';
import type { ObjectRef } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { SECRET_KIND, type SecretObject } from './kinds.ts';

export const TOKEN_KEY_BYTES = 32;
const TOKEN_KEY_FIELD = 'key';

export function deriveToken(key: Buffer, hostUid: string, attempt: number, expiresAt: string): string {
  return createHmac('sha256', key)
    .update(`metalbox talos config token v1\0${hostUid}\0${attempt}\0${expiresAt}`)
    .digest('base64url');
}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

// Compared against when there is no stored hash, so every refusal does the same work.
const NO_HASH_HEX = createHash('sha256').update('metalbox: no token').digest('hex');

/**
 * Constant-time: sha256(given) against the stored hex hash (or a dummy when there is none), so the
 * time does not depend on whether the host exists, has a token, or how much of the token matched.
 */
export function tokenMatches(given: string, storedHash: string | undefined): boolean {
  const actual = createHash('sha256').update(given).digest();
  const usable = storedHash !== undefined && /^[0-9a-f]{64}$/.test(storedHash);
  const stored = Buffer.from(usable ? storedHash : NO_HASH_HEX, 'hex');
  return timingSafeEqual(actual, stored) && usable;
}

/**
 * The server key from a Secret, created with 32 random bytes when absent (two replicas racing: the
 * loser reads the winner's). Rotating it (deleting the Secret) invalidates outstanding URLs.
 */
export async function loadTokenKey(store: ResourceStore, ref: Required<ObjectRef>): Promise<Buffer> {
  const read = async () => {
    const secret = await store.get<SecretObject>(SECRET_KIND, ref);
    const value = secret.data?.[TOKEN_KEY_FIELD];
    const key = typeof value === 'string' ? Buffer.from(value, 'base64') : undefined;
    if (!key || key.length < TOKEN_KEY_BYTES) {
      throw new Error(
        `Secret ${ref.namespace}/${ref.name} has no ${TOKEN_KEY_BYTES}-byte "${TOKEN_KEY_FIELD}" key`,
      );
    }
    return key;
  };
  try {
    return await read();
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  try {
    await store.create<SecretObject>(SECRET_KIND, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: ref.name,
        namespace: ref.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'metalbox' },
      },
      type: 'Opaque',
      data: { [TOKEN_KEY_FIELD]: randomBytes(TOKEN_KEY_BYTES).toString('base64') },
    });
  } catch (error) {
    if (!isAlreadyExists(error)) throw error;
  }
  return read();
}
