// The configured Matchbox endpoints as the sync controllers and the drift scan use them: one
// client each, built lazily from files or a Secret and rebuilt when the credentials change
// (certificate rotation); every call counted and the endpoint's health recorded; and a per-object
// lock plus a note of the last write, so a drift repair never overwrites a newer write of the
// sync controllers with an older rendering.
import { createHash } from 'node:crypto';
import { MatchboxClient } from '../../matchbox/client.ts';
import {
  isMatchboxError,
  isUnreachable,
  MatchboxConfigError,
  MatchboxUnreachableError,
} from '../../matchbox/errors.ts';
import { loadTLSFromFiles, type MatchboxTLS, SECRET_KEYS } from '../../matchbox/tls.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import type { EndpointConfig } from './config.ts';
import type { MatchboxSyncMetrics } from './metrics.ts';
import { getSecret, SecretUnavailableError, secretValue } from './secrets.ts';

/** Credentials are read again this often, so a rotated certificate is picked up without a restart. */
const CREDENTIALS_REFRESH_MS = 60_000;
/** ...and sooner after they could not be loaded (a Secret created after the controller started). */
const CREDENTIALS_RETRY_MS = 5_000;

/** After a call timed out, further calls fail at once for this long (then one probes). */
const HUNG_HOLD_MS = 5_000;

/** Failures that mean the endpoint did not answer at all (as opposed to refusing one object). */
const DOWN_REASONS = new Set([
  'Config',
  'Unreachable',
  'ServerNameMismatch',
  'UnknownCA',
  'ClientCertRejected',
  'TLSFailed',
]);

/** What was last written for one object, by anyone: drift repair must not write anything older. */
export interface WriteMark {
  uid: string;
  generation: number;
  deleted: boolean;
}

export type ObjectKindName = 'profile' | 'group';

export class Endpoint {
  readonly name: string;
  /** host:port of the gRPC API: the key of the endpoint's entry in an object's status. */
  readonly address: string;
  readonly httpURL: string | undefined;
  readonly timeoutMs: number;
  readonly #config: EndpointConfig;
  readonly #store: ResourceStore;
  readonly #metrics: MatchboxSyncMetrics;
  #client: MatchboxClient | undefined;
  #fingerprint: string | undefined;
  #loaded: { at: number; error?: Error } | undefined;
  #loading: Promise<MatchboxClient> | undefined;
  #hung: { until: number; error: MatchboxUnreachableError } | undefined;
  #probing = false;
  #locks = new Map<string, Promise<void>>();
  #marks = new Map<string, WriteMark>();
  #closed = false;

  constructor(config: EndpointConfig, store: ResourceStore, metrics: MatchboxSyncMetrics) {
    this.name = config.name;
    this.address = config.endpoint;
    this.httpURL = config.httpURL;
    this.timeoutMs = config.timeoutSeconds * 1000;
    this.#config = config;
    this.#store = store;
    this.#metrics = metrics;
  }

  /** `mgmt-01 (10.0.20.11:8081)`, for messages. */
  get label(): string {
    return `${this.name} (${this.address})`;
  }

  /**
   * Runs one client call, counting it and recording whether the endpoint answered. After a call
   * timed out (a hung or black-holed server), calls fail at once for a while and then one probe
   * call is let through: otherwise every reconcile would wait out the deadline on that endpoint
   * and hold up the endpoints that answer.
   */
  async call<T>(operation: string, fn: (client: MatchboxClient) => Promise<T>): Promise<T> {
    const hung = this.#hung;
    let probe = false;
    if (hung) {
      if (Date.now() < hung.until || this.#probing) {
        this.#metrics.calls.inc({ endpoint: this.name, operation, result: 'held' });
        throw hung.error;
      }
      this.#probing = probe = true;
    }
    try {
      const result = await fn(await this.#clientNow());
      this.#hung = undefined;
      this.#metrics.calls.inc({ endpoint: this.name, operation, result: 'ok' });
      this.#metrics.endpointUp.set({ endpoint: this.name }, 1);
      return result;
    } catch (error) {
      this.#metrics.calls.inc({ endpoint: this.name, operation, result: 'error' });
      const down = !isMatchboxError(error) || DOWN_REASONS.has(error.reason);
      this.#metrics.endpointUp.set({ endpoint: this.name }, down ? 0 : 1);
      if (isUnreachable(error) && error.failure === 'timeout') {
        const detail = error.message.replace(/^Matchbox at \S+ is unreachable: /, '');
        this.#hung = {
          until: Date.now() + HUNG_HOLD_MS,
          error: new MatchboxUnreachableError(
            this.address,
            'timeout',
            `${detail} Calls to it are held for ${HUNG_HOLD_MS / 1000}s at a time until it answers again.`,
          ),
        };
      } else if (probe) this.#hung = undefined;
      throw error;
    } finally {
      if (probe) this.#probing = false;
    }
  }

  /** Runs `fn` while holding the lock of one object on this endpoint (writes to it are serialised). */
  async withLock<T>(kind: ObjectKindName, id: string, fn: () => Promise<T>): Promise<T> {
    const key = `${kind}/${id}`;
    const previous = this.#locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#locks.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  lastWrite(kind: ObjectKindName, id: string): WriteMark | undefined {
    return this.#marks.get(`${kind}/${id}`);
  }

  noteWrite(kind: ObjectKindName, id: string, mark: WriteMark): void {
    this.#marks.set(`${kind}/${id}`, mark);
  }

  /**
   * Forgets the write notes of objects `keep` rejects (a drift scan: those no resource declared
   * when it listed the store), so that objects coming and going never add up.
   */
  pruneWrites(keep: (kind: ObjectKindName, id: string) => boolean): void {
    for (const key of this.#marks.keys()) {
      const slash = key.indexOf('/');
      if (!keep(key.slice(0, slash) as ObjectKindName, key.slice(slash + 1))) this.#marks.delete(key);
    }
  }

  /** Objects with a write note (for tests). */
  get notedWrites(): number {
    return this.#marks.size;
  }

  /** True when something at least as new as (uid, generation) was already written or deleted. */
  hasNewerWrite(kind: ObjectKindName, id: string, uid: string, generation: number): boolean {
    const mark = this.lastWrite(kind, id);
    return mark !== undefined && mark.uid === uid && (mark.deleted || mark.generation > generation);
  }

  close(): void {
    this.#closed = true;
    this.#client?.close();
    this.#client = undefined;
  }

  async #clientNow(): Promise<MatchboxClient> {
    if (this.#closed) throw new MatchboxConfigError('client', 'is closed', this.address);
    const loaded = this.#loaded;
    const age = loaded ? Date.now() - loaded.at : Number.POSITIVE_INFINITY;
    const fresh = loaded && age < (loaded.error ? CREDENTIALS_RETRY_MS : CREDENTIALS_REFRESH_MS);
    if (fresh) {
      if (loaded.error) throw loaded.error;
      if (this.#client) return this.#client;
    }
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #load(): Promise<MatchboxClient> {
    try {
      const material = await this.#readCredentials();
      const fingerprint = createHash('sha256')
        .update(material.ca)
        .update('\0')
        .update(material.cert)
        .update('\0')
        .update(material.key)
        .digest('hex');
      if (!this.#client || fingerprint !== this.#fingerprint) {
        const client = new MatchboxClient({
          endpoint: this.address,
          tls: material,
          timeoutMs: this.timeoutMs,
        });
        this.#client?.close();
        this.#client = client;
        this.#fingerprint = fingerprint;
      }
      this.#loaded = { at: Date.now() };
      return this.#client;
    } catch (error) {
      const wrapped = this.#credentialsError(error);
      this.#loaded = { at: Date.now(), error: wrapped };
      throw wrapped;
    }
  }

  /** Names where the bad credential came from: the Secret and key, or the config field and file. */
  #credentialsError(error: unknown): MatchboxConfigError {
    const tls = this.#config.tls;
    if (!(error instanceof MatchboxConfigError)) {
      const field = 'secretRef' in tls ? 'tls.secretRef' : 'tls';
      return new MatchboxConfigError(field, `is unusable: ${(error as Error).message}`, this.address);
    }
    if (error.endpoint) return error;
    // checkTLS/loadTLSFromFiles name the part (ca, cert, key / caFile, ...); say where it came from.
    const part = error.field.replace(/File$/, '') as keyof typeof SECRET_KEYS;
    const problem = error.message.replace(/^Matchbox client \S+ /, '');
    const field =
      'secretRef' in tls
        ? `tls.secretRef (Secret ${tls.secretRef.namespace}/${tls.secretRef.name} key ${SECRET_KEYS[part] ?? part})`
        : `tls.${part}File (${tls[`${part}File` as 'caFile'] ?? '?'})`;
    return new MatchboxConfigError(field, problem, this.address);
  }

  async #readCredentials(): Promise<MatchboxTLS> {
    const tls = this.#config.tls;
    if (!('secretRef' in tls)) return loadTLSFromFiles(tls);
    const secret = await getSecret(this.#store, tls.secretRef);
    const read = (key: string) => {
      const value = secretValue(secret, key);
      if (value === undefined) throw new SecretUnavailableError(tls.secretRef, key, 'is missing');
      return value.toString('utf8');
    };
    return { ca: read(SECRET_KEYS.ca), cert: read(SECRET_KEYS.cert), key: read(SECRET_KEYS.key) };
  }
}

/** Every configured endpoint, in configuration order (the order of status entries). */
export class EndpointPool {
  readonly endpoints: readonly Endpoint[];

  constructor(configs: readonly EndpointConfig[], store: ResourceStore, metrics: MatchboxSyncMetrics) {
    this.endpoints = configs.map((c) => new Endpoint(c, store, metrics));
  }

  byName(name: string): Endpoint | undefined {
    return this.endpoints.find((e) => e.name === name);
  }

  close(): void {
    for (const e of this.endpoints) e.close();
  }
}
