/**
 * Secrets at rest in standalone mode (BMC credentials, Matchbox client certs, Talos configs): a
 * ResourceStore wrapper that encrypts the data of core/v1 Secrets with AES-256-GCM before the
 * inner store (etcd, file) sees them, and decrypts on the way out, so callers see ordinary Secrets
 * (`data` base64, `stringData` folded in as the apiserver does) and the backend only ciphertext.
 *
 * Stored form: the Secret without `data`/`stringData`, plus
 *   encryptedData: "metalbox:enc:aes256gcm:v1:<key name>:<base64(nonce ‖ ciphertext ‖ tag)>"
 * The plaintext is the JSON of `data`; the additional authenticated data is `secrets/<ns>/<name>`,
 * so a ciphertext copied onto another Secret does not decrypt. Metadata (name, labels,
 * annotations) and `type` stay readable: put nothing secret there.
 *
 * Keys come from a key file; the first key encrypts, every key decrypts (rotation: see
 * deploy/standalone/README.md).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { parse } from 'yaml';
import { type FieldError, InvalidError } from '../runtime/errors.ts';
import { describe, type ObjectRef, type Resource, type ResourceKind, refOf } from '../runtime/resource.ts';
import type {
  DeleteOptions,
  ListOptions,
  ResourceList,
  ResourceStore,
  WatchEvent,
  WatchOptions,
} from '../runtime/store.ts';

export const SecretKind: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
};

export interface SecretObject extends Resource {
  type?: string;
  immutable?: boolean;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  /** Only in the stored form. */
  encryptedData?: string;
}

const ENVELOPE = /^metalbox:enc:aes256gcm:v1:([A-Za-z0-9._-]{1,64}):([A-Za-z0-9+/]+={0,2})$/;
const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface EncryptionKey {
  name: string;
  key: Buffer;
}

/** A bad key file: which file and what is wrong with it, never key material. */
export class KeyFileError extends Error {
  constructor(source: string, problem: string) {
    super(`encryption key file ${source}: ${problem}`);
    this.name = 'KeyFileError';
  }
}

/** A Secret could not be encrypted or decrypted; names the Secret and key, never the data. */
export class SecretEncryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretEncryptionError';
  }
}

/** The keys of a key file: the first encrypts, all decrypt. */
export class Keyring {
  readonly keys: readonly EncryptionKey[];

  constructor(keys: EncryptionKey[]) {
    if (keys.length === 0) throw new Error('a keyring needs at least one key');
    this.keys = keys;
  }

  get primary(): EncryptionKey {
    return this.keys[0]!;
  }

  find(name: string): EncryptionKey | undefined {
    return this.keys.find((k) => k.name === name);
  }

  /**
   * Reads a key file (YAML or JSON): `keys: [{name, secret}]` with each secret 32 random bytes in
   * base64 (`head -c 32 /dev/urandom | base64`). Refuses a file readable by group or others.
   */
  static async fromFile(path: string): Promise<Keyring> {
    let mode: number;
    let text: string;
    try {
      mode = (await stat(path)).mode;
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new KeyFileError(path, (error as Error).message);
    }
    if ((mode & 0o077) !== 0) {
      throw new KeyFileError(
        path,
        `is readable by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`,
      );
    }
    return Keyring.parse(text, path);
  }

  static parse(text: string, source = '<key file>'): Keyring {
    let doc: unknown;
    try {
      doc = parse(text);
    } catch (error) {
      throw new KeyFileError(source, `not YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
    }
    const list = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(list) || list.length === 0) {
      throw new KeyFileError(source, 'needs a non-empty "keys" list of {name, secret}');
    }
    const keys: EncryptionKey[] = [];
    list.forEach((entry: unknown, i) => {
      const { name, secret } = (entry ?? {}) as { name?: unknown; secret?: unknown };
      if (typeof name !== 'string' || !KEY_NAME.test(name)) {
        throw new KeyFileError(source, `keys[${i}].name must be 1-64 characters of A-Z a-z 0-9 . _ -`);
      }
      if (keys.some((k) => k.name === name))
        throw new KeyFileError(source, `keys[${i}].name "${name}" is repeated`);
      const key =
        typeof secret === 'string' && BASE64.test(secret.trim())
          ? Buffer.from(secret.trim(), 'base64')
          : undefined;
      if (key?.length !== 32) {
        throw new KeyFileError(source, `keys[${i}].secret (key "${name}") must be 32 bytes in base64`);
      }
      keys.push({ name, key });
    });
    return new Keyring(keys);
  }
}

export interface SecretStoreOptions {
  /** Without a keyring Secrets are stored as given (the embedded store in development)... */
  keyring?: Keyring;
  /** ...unless this is set (etcd): then writing or reading a Secret fails and nothing is stored. */
  requireEncryption?: boolean;
}

const isSecretKind = (kind: ResourceKind) => kind.group === '' && kind.plural === 'secrets';

export class SecretStore implements ResourceStore {
  readonly #inner: ResourceStore;
  readonly #keyring: Keyring | undefined;
  readonly #require: boolean;

  constructor(inner: ResourceStore, options: SecretStoreOptions = {}) {
    this.#inner = inner;
    this.#keyring = options.keyring;
    this.#require = options.requireEncryption ?? false;
  }

  /** The wrapped store (e.g. to reach the etcd client). */
  get inner(): ResourceStore {
    return this.#inner;
  }

  async get<T extends Resource>(kind: ResourceKind, ref: ObjectRef): Promise<T> {
    const obj = await this.#inner.get<T>(kind, ref);
    return isSecretKind(kind) ? (this.#open(obj as SecretObject) as unknown as T) : obj;
  }

  async list<T extends Resource>(kind: ResourceKind, options?: ListOptions): Promise<ResourceList<T>> {
    const list = await this.#inner.list<T>(kind, options);
    if (!isSecretKind(kind)) return list;
    return { ...list, items: list.items.map((o) => this.#open(o as SecretObject) as unknown as T) };
  }

  watch<T extends Resource>(kind: ResourceKind, options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const events = this.#inner.watch<T>(kind, options);
    if (!isSecretKind(kind)) return events;
    const open = (o: T) => this.#open(o as SecretObject) as unknown as T;
    return {
      async *[Symbol.asyncIterator]() {
        for await (const e of events)
          yield e.type === 'BOOKMARK' ? e : { type: e.type, object: open(e.object) };
      },
    };
  }

  async create<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    if (!isSecretKind(kind)) return this.#inner.create(kind, obj);
    const sealed = this.#seal(kind, fold(kind, obj as SecretObject));
    return this.#open(await this.#inner.create(kind, sealed)) as unknown as T;
  }

  async update<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    if (!isSecretKind(kind)) return this.#inner.update(kind, obj);
    const next = fold(kind, obj as SecretObject);
    const ref = kind.namespaced ? refOf(next) : { name: next.metadata.name };
    const stored = await this.#inner.get<SecretObject>(kind, ref);
    const keep = this.#reusable(stored, next);
    const sealed = keep ? { ...withoutData(next), encryptedData: keep } : this.#seal(kind, next);
    return this.#open(await this.#inner.update(kind, sealed)) as unknown as T;
  }

  async updateStatus<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    if (!isSecretKind(kind)) return this.#inner.updateStatus(kind, obj);
    // Only status is written; drop the plaintext so it never travels further.
    return this.#open(await this.#inner.updateStatus(kind, withoutData(obj as SecretObject))) as unknown as T;
  }

  async patchStatus<T extends Resource>(
    kind: ResourceKind,
    ref: ObjectRef,
    patch: Record<string, unknown>,
    options?: { resourceVersion?: string },
  ): Promise<T> {
    const out = await this.#inner.patchStatus<T>(kind, ref, patch, options);
    return isSecretKind(kind) ? (this.#open(out as SecretObject) as unknown as T) : out;
  }

  delete(kind: ResourceKind, ref: ObjectRef, options?: DeleteOptions): Promise<void> {
    return this.#inner.delete(kind, ref, options);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  /** The stored envelope, when it already holds exactly `next.data` under the primary key. */
  #reusable(stored: SecretObject, next: SecretObject): string | undefined {
    const envelope = stored.encryptedData;
    if (!envelope || !this.#keyring) return undefined;
    if (ENVELOPE.exec(envelope)?.[1] !== this.#keyring.primary.name) return undefined;
    const current = this.#open(stored);
    return isDeepStrictEqual(current.data ?? {}, next.data ?? {}) ? envelope : undefined;
  }

  #seal(kind: ResourceKind, secret: SecretObject): SecretObject {
    const bare = withoutData(secret);
    const data = secret.data ?? {};
    if (!this.#keyring) {
      if (this.#require) {
        throw new SecretEncryptionError(
          `${describe(kind, refOf(secret))} was not stored: Secrets are kept encrypted in this store and no encryption key file was given (--encryption-key-file)`,
        );
      }
      return secret;
    }
    const { name, key } = this.#keyring.primary;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(aad(secret));
    const body = Buffer.concat([cipher.update(JSON.stringify(data), 'utf8'), cipher.final()]);
    const sealed = Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
    return { ...bare, encryptedData: `metalbox:enc:aes256gcm:v1:${name}:${sealed}` };
  }

  #open(stored: SecretObject): SecretObject {
    const envelope = stored.encryptedData;
    const { encryptedData: _e, ...rest } = stored;
    // Plaintext at rest (written before encryption was enabled) reads as is; the next write seals it.
    if (envelope === undefined) return rest;
    const what = `Secret ${stored.metadata.namespace}/${stored.metadata.name}`;
    const match = ENVELOPE.exec(envelope);
    if (!match) throw new SecretEncryptionError(`${what}: stored data is not a metalbox encryption envelope`);
    const [, keyName, payload] = match as unknown as [string, string, string];
    if (!this.#keyring) {
      throw new SecretEncryptionError(
        `${what} is encrypted (key "${keyName}") and no encryption key file was given`,
      );
    }
    const key = this.#keyring.find(keyName);
    if (!key) {
      throw new SecretEncryptionError(
        `${what} is encrypted with key "${keyName}", which is not in the key file (keys: ${this.#keyring.keys.map((k) => k.name).join(', ')})`,
      );
    }
    const raw = Buffer.from(payload, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.key, raw.subarray(0, 12));
      decipher.setAAD(aad(stored));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      const plain = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
      const data = JSON.parse(plain.toString('utf8')) as Record<string, string>;
      return Object.keys(data).length > 0 ? { ...rest, data } : rest;
    } catch {
      throw new SecretEncryptionError(
        `${what} could not be decrypted with key "${keyName}" (a different key under that name, or data altered or moved from another Secret)`,
      );
    }
  }
}

function aad(secret: SecretObject): Buffer {
  return Buffer.from(`secrets/${secret.metadata.namespace ?? ''}/${secret.metadata.name}`);
}

function withoutData(secret: SecretObject): SecretObject {
  const { data: _d, stringData: _s, encryptedData: _e, ...rest } = secret;
  return rest;
}

/** As the apiserver: stringData values are base64-encoded into data (winning over data), keys checked. */
function fold(kind: ResourceKind, secret: SecretObject): SecretObject {
  const errors: FieldError[] = [];
  const data: Record<string, string> = {};
  for (const [field, map] of [
    ['data', secret.data],
    ['stringData', secret.stringData],
  ] as const) {
    if (map === undefined || map === null) continue;
    if (typeof map !== 'object' || Array.isArray(map)) {
      errors.push({ path: field, message: 'must be a map of strings' });
      continue;
    }
    for (const [k, v] of Object.entries(map)) {
      if (!DATA_KEY.test(k) || k.length > 253) {
        errors.push({
          path: `${field}[${k}]`,
          message: 'a valid config key must consist of alphanumeric characters, "-", "_" or "."',
        });
      } else if (typeof v !== 'string') {
        errors.push({ path: `${field}[${k}]`, message: 'must be a string' });
      } else if (field === 'data' && !BASE64.test(v)) {
        errors.push({ path: `${field}[${k}]`, message: 'must be base64-encoded' });
      } else {
        data[k] = field === 'data' ? v : Buffer.from(v, 'utf8').toString('base64');
      }
    }
  }
  if (errors.length > 0) throw new InvalidError(describe(kind, refOf(secret)), errors);
  const out: SecretObject = { ...withoutData(secret) };
  if (Object.keys(data).length > 0) out.data = data;
  return out;
}
