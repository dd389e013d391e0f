/**
 * List then watch one kind into a local cache, and keep it right: relist on Gone; on any other
 * watch error, or a stall (no event and no bookmark for `stallTimeoutMs`), watch again from the
 * last version with backoff; periodically re-announce every cached object (resync). What it does
 * is emitted as events ('relist', 'restart') so tests and metrics can observe it.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BackoffOptions, backoffDelay } from './backoff.ts';
import { isGone } from './errors.ts';
import { errorFields, type Logger, silentLogger } from './logger.ts';
import {
  matchesLabels,
  type ObjectRef,
  objectKey,
  type Resource,
  type ResourceKind,
  refOf,
} from './resource.ts';
import type { ResourceStore, WatchEvent } from './store.ts';

export interface InformerOptions {
  /** Watch one namespace only (default: all). */
  namespace?: string;
  /** Emit 'resync' for every cached object this often (default 10 min; 0: never). */
  resyncMs?: number;
  /** Restart a watch that delivered nothing, not even a bookmark, for this long (default 2 min). */
  stallTimeoutMs?: number;
  /** Delay between failed attempts (default 1 s doubling to 30 s). */
  backoff?: BackoffOptions;
  logger?: Logger;
}

export type RelistReason = 'initial' | 'gone' | 'error';
export type RestartReason = 'error' | 'stall' | 'closed';

export interface InformerEvents<T> {
  add: [obj: T];
  update: [obj: T, old: T];
  delete: [obj: T];
  resync: [obj: T];
  /** A list replaced the cache. */
  relist: [info: { reason: RelistReason; resourceVersion: string; count: number }];
  /** The watch (or list) is started again after `delayMs`. */
  restart: [info: { reason: RestartReason; error?: unknown; delayMs: number }];
  synced: [];
}

export class Informer<T extends Resource = Resource> extends EventEmitter<InformerEvents<T>> {
  readonly kind: ResourceKind;
  #store: ResourceStore;
  #options: Required<Omit<InformerOptions, 'namespace' | 'logger'>> & { namespace?: string };
  #logger: Logger;
  #cache = new Map<string, T>();
  #resourceVersion = '';
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;

  constructor(store: ResourceStore, kind: ResourceKind, options: InformerOptions = {}) {
    super();
    this.kind = kind;
    this.#store = store;
    this.#logger = options.logger ?? silentLogger;
    this.#options = {
      namespace: options.namespace,
      resyncMs: options.resyncMs ?? 600_000,
      stallTimeoutMs: options.stallTimeoutMs ?? 120_000,
      backoff: options.backoff ?? { baseMs: 1000, capMs: 30_000, jitter: 0.2 },
    };
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  /** The version the cache reflects: the last list, event or bookmark. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  get running(): boolean {
    return this.#loop !== undefined && !this.#stop.signal.aborted;
  }

  start(): void {
    if (this.#loop || this.#stop.signal.aborted) return;
    this.#loop = this.#run();
    if (this.#options.resyncMs > 0) {
      this.#resyncTimer = setInterval(() => this.resync(), this.#options.resyncMs);
    }
  }

  /** Ends the watch and the timers; the cache stays readable. */
  async stop(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#resyncTimer);
    await this.#loop;
  }

  /** Resolves after the first successful list (rejects if `signal` aborts first). */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal?.reason ?? new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** A copy of the cached object, or undefined. */
  get(ref: ObjectRef): T | undefined {
    const obj = this.#cache.get(objectKey(this.kind.namespaced ? ref : { name: ref.name }));
    return obj && structuredClone(obj);
  }

  /** Copies of cached objects, optionally in one namespace and matching labels. */
  list(options: { namespace?: string; labelSelector?: Record<string, string> } = {}): T[] {
    const out: T[] = [];
    for (const obj of this.#cache.values()) {
      if (options.namespace !== undefined && obj.metadata.namespace !== options.namespace) continue;
      if (!matchesLabels(obj, options.labelSelector)) continue;
      out.push(structuredClone(obj));
    }
    return out;
  }

  keys(): string[] {
    return [...this.#cache.keys()];
  }

  /** Emits 'resync' for every cached object (the periodic timer calls this too). */
  resync(): void {
    if (!this.#synced) return;
    for (const obj of this.#cache.values()) this.#emit('resync', obj);
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    let failures = 0;
    let relist: RelistReason | undefined = 'initial';
    while (!stop.aborted) {
      try {
        if (relist) {
          await this.#relist(relist);
          relist = undefined;
          failures = 0;
        }
        const { stalled, received } = await this.#watchOnce();
        if (stop.aborted) break;
        if (received) failures = 0;
        // A stream that closes after delivering something is routine (servers time watches out).
        const reason: RestartReason = stalled ? 'stall' : 'closed';
        const delayMs = stalled || !received ? backoffDelay(++failures, this.#options.backoff) : 0;
        this.#restarting(reason, delayMs);
        await sleep(delayMs, undefined, { signal: stop }).catch(() => {});
      } catch (error) {
        if (stop.aborted) break;
        if (isGone(error)) {
          this.#logger.info(
            { kind: this.kind.kind, ...errorFields(error) },
            'watch version is gone; listing again',
          );
          relist = 'gone';
          continue;
        }
        if (relist) relist = relist === 'initial' && !this.#synced ? 'initial' : 'error';
        const delayMs = backoffDelay(++failures, this.#options.backoff);
        this.#restarting('error', delayMs, error);
        await sleep(delayMs, undefined, { signal: stop }).catch(() => {});
      }
    }
  }

  #restarting(reason: RestartReason, delayMs: number, error?: unknown): void {
    const level = reason === 'closed' ? 'debug' : 'warn';
    this.#logger[level](
      { kind: this.kind.kind, reason, delayMs: Math.round(delayMs), ...(error ? errorFields(error) : {}) },
      'restarting watch',
    );
    this.#emit('restart', { reason, delayMs, ...(error === undefined ? {} : { error }) });
  }

  async #relist(reason: RelistReason): Promise<void> {
    const list = await this.#store.list<T>(this.kind, { namespace: this.#options.namespace });
    const old = this.#cache;
    const fresh = new Map<string, T>();
    for (const obj of list.items) fresh.set(objectKey(refOf(obj)), obj);
    this.#cache = fresh;
    this.#resourceVersion = list.resourceVersion;
    for (const [key, obj] of fresh) {
      const before = old.get(key);
      if (!before) this.#emit('add', obj);
      else if (before.metadata.resourceVersion !== obj.metadata.resourceVersion)
        this.#emit('update', obj, before);
    }
    for (const [key, obj] of old) if (!fresh.has(key)) this.#emit('delete', obj);
    this.#emit('relist', { reason, resourceVersion: list.resourceVersion, count: fresh.size });
    if (!this.#synced) {
      this.#synced = true;
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
      this.#emit('synced');
    }
  }

  /** One watch from the current version until it ends, fails (throws) or stalls. */
  async #watchOnce(): Promise<{ stalled: boolean; received: boolean }> {
    const ac = new AbortController();
    const stop = this.#stop.signal;
    // Stopped while listing: an already-aborted signal never fires 'abort' again.
    if (stop.aborted) return { stalled: false, received: false };
    const onStop = () => ac.abort();
    stop.addEventListener('abort', onStop, { once: true });
    let stalled = false;
    let received = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        ac.abort();
      }, this.#options.stallTimeoutMs);
    };
    // Do not rely on the store honouring the signal: race every read against it.
    const ended = new Promise<IteratorResult<WatchEvent<T>>>((resolve) => {
      ac.signal.addEventListener('abort', () => resolve({ done: true, value: undefined }), { once: true });
    });
    let iterator: AsyncIterator<WatchEvent<T>> | undefined;
    try {
      iterator = this.#store
        .watch<T>(this.kind, {
          namespace: this.#options.namespace,
          resourceVersion: this.#resourceVersion,
          signal: ac.signal,
        })
        [Symbol.asyncIterator]();
      arm();
      for (;;) {
        const next = iterator.next();
        next.catch(() => {}); // may be abandoned below; its rejection is not news then
        const result = await Promise.race([next, ended]);
        if (result.done) break;
        received = true;
        arm();
        this.#apply(result.value);
      }
    } finally {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
      ac.abort();
      iterator?.return?.().catch(() => {});
    }
    return { stalled, received };
  }

  #apply(event: WatchEvent<T>): void {
    if (event.type === 'BOOKMARK') {
      this.#resourceVersion = event.resourceVersion;
      return;
    }
    const obj = event.object;
    const key = objectKey(refOf(obj));
    const before = this.#cache.get(key);
    if (obj.metadata.resourceVersion) this.#resourceVersion = obj.metadata.resourceVersion;
    if (event.type === 'DELETED') {
      this.#cache.delete(key);
      this.#emit('delete', obj);
      return;
    }
    this.#cache.set(key, obj);
    if (!before) this.#emit('add', obj);
    else if (before.metadata.resourceVersion !== obj.metadata.resourceVersion)
      this.#emit('update', obj, before);
  }

  /** A throwing listener must not break the informer. */
  #emit<K extends keyof InformerEvents<T>>(event: K, ...args: InformerEvents<T>[K]): void {
    try {
      (this.emit as (e: K, ...a: InformerEvents<T>[K]) => boolean)(event, ...args);
    } catch (error) {
      this.#logger.error({ kind: this.kind.kind, event, ...errorFields(error) }, 'informer listener failed');
    }
  }
}
