// Reading Secrets through the ResourceStore: Matchbox client credentials and generic templates.
// Secret values are returned as bytes and never appear in errors.
import { isNotFound } from '../../runtime/errors.ts';
import type { ObjectRef, Resource, ResourceKind } from '../../runtime/resource.ts';
import type { ResourceStore } from '../../runtime/store.ts';

/** core/v1 Secret. */
export const SecretKind: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
};

export interface SecretObject extends Resource {
  data?: Record<string, string> | null;
  /** Write-only on a kube-apiserver (folded into data); stores without one may keep it. */
  stringData?: Record<string, string> | null;
}

/** A Secret or one of its keys is missing; says which, never what is inside. */
export class SecretUnavailableError extends Error {
  readonly secret: string;
  readonly key: string | undefined;
  constructor(secret: ObjectRef, key: string | undefined, problem: string) {
    super(`Secret ${secret.namespace}/${secret.name}${key === undefined ? '' : ` key "${key}"`} ${problem}`);
    this.name = 'SecretUnavailableError';
    this.secret = `${secret.namespace}/${secret.name}`;
    this.key = key;
  }
}

export async function getSecret(store: ResourceStore, ref: ObjectRef): Promise<SecretObject> {
  try {
    return await store.get<SecretObject>(SecretKind, ref);
  } catch (error) {
    if (isNotFound(error)) throw new SecretUnavailableError(ref, undefined, 'does not exist');
    throw error;
  }
}

/** The bytes of one key (data is base64, stringData plain). */
export function secretValue(secret: SecretObject, key: string): Buffer | undefined {
  const plain = secret.stringData?.[key];
  if (typeof plain === 'string') return Buffer.from(plain, 'utf8');
  const encoded = secret.data?.[key];
  if (typeof encoded === 'string') return Buffer.from(encoded, 'base64');
  return undefined;
}

export async function readSecretKey(store: ResourceStore, ref: ObjectRef, key: string): Promise<Buffer> {
  const value = secretValue(await getSecret(store, ref), key);
  if (value === undefined) throw new SecretUnavailableError(ref, key, 'is missing');
  return value;
}
