// BMC credentials come from a Kubernetes Secret with `username` and `password` keys. Drivers never hold a
// copy: they call a provider at the start of every operation, so a rotated Secret (new resourceVersion)
// is used from the next operation on, without a restart.
import { BmcCredentialsError } from './errors.ts';

export interface BmcCredentials {
  username: string;
  password: string;
  /** Changes whenever the credentials may have changed (the Secret's resourceVersion). */
  version: string;
}

/** Called per operation; may read from an informer cache, a file, or a constant. */
export type CredentialProvider = () => BmcCredentials | Promise<BmcCredentials>;

/** The Secret fields metalbox reads (a subset of a core/v1 Secret). */
export interface SecretLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  /** base64-encoded values, as the API server returns them. */
  data?: Record<string, string | undefined>;
  /** Plain values, as written in a manifest before the API server folds them into data. */
  stringData?: Record<string, string | undefined>;
}

function decode(secret: SecretLike, key: string, bmc: string, ref: string): string {
  const plain = secret.stringData?.[key];
  if (plain !== undefined && plain !== '') return plain;
  const encoded = secret.data?.[key];
  if (encoded === undefined || encoded === '') {
    throw new BmcCredentialsError(bmc, `Secret ${ref} has no "${key}" key`);
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded.replace(/\s+/g, ''))) {
    throw new BmcCredentialsError(bmc, `Secret ${ref} key "${key}" is not valid base64`);
  }
  // BMC credentials are text; a trailing newline is almost always an artefact of `echo > file`.
  const value = Buffer.from(encoded, 'base64')
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (value === '') throw new BmcCredentialsError(bmc, `Secret ${ref} key "${key}" is empty`);
  return value;
}

/** Reads credentials out of a Secret-shaped object. Errors name the Secret and key, never a value. */
export function credentialsFromSecret(secret: SecretLike, bmc: string): BmcCredentials {
  const ref = secret.metadata?.name
    ? `${secret.metadata.namespace ? `${secret.metadata.namespace}/` : ''}${secret.metadata.name}`
    : '(unnamed)';
  const username = decode(secret, 'username', bmc, ref);
  const password = decode(secret, 'password', bmc, ref);
  return { username, password, version: `${ref}@${secret.metadata?.resourceVersion ?? ''}` };
}

/**
 * A provider over a Secret getter (e.g. an informer-cache lookup). The decoded value is cached per
 * resourceVersion; a missing Secret is a BmcCredentialsError naming it.
 */
export function secretCredentialProvider(
  getSecret: () => SecretLike | undefined | Promise<SecretLike | undefined>,
  bmc: string,
  secretName = 'credentials Secret',
): CredentialProvider {
  let cached: { resourceVersion: string | undefined; credentials: BmcCredentials } | undefined;
  let edits = 0;
  return async () => {
    const secret = await getSecret();
    if (!secret) throw new BmcCredentialsError(bmc, `${secretName} not found`);
    const rv = secret.metadata?.resourceVersion;
    if (rv !== undefined && cached?.resourceVersion === rv) return cached.credentials;
    let credentials = credentialsFromSecret(secret, bmc);
    if (rv === undefined) {
      // No resourceVersion (an object not from the API server): notice edits by comparing values.
      const same =
        cached?.credentials.username === credentials.username &&
        cached?.credentials.password === credentials.password;
      if (same && cached) return cached.credentials;
      credentials = { ...credentials, version: `${credentials.version}local-${++edits}` };
    }
    cached = { resourceVersion: rv, credentials };
    return credentials;
  };
}

/** Fixed credentials (CLI, tests); the version never changes. */
export function staticCredentials(username: string, password: string): CredentialProvider {
  const credentials = { username, password, version: 'static' };
  return () => credentials;
}
