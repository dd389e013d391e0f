/**
 * In-process ResourceStore with apiserver semantics and a global revision counter (like etcd), for
 * tests that need a store but not a backend. Nothing is persisted.
 */
import { Channel } from '../runtime/channel.ts';
import { AlreadyExistsError, ConflictError, InvalidError, NotFoundError } from '../runtime/errors.ts';
import {
  describe,
  matchesLabels,
  type ObjectRef,
  objectKey,
  type Resource,
  type ResourceKind,
  refOf,
  resourceKey,
} from '../runtime/resource.ts';
import type {
  DeleteOptions,
  ListOptions,
  ResourceList,
  ResourceStore,
  Validator,
  WatchEvent,
  WatchOptions,
} from '../runtime/store.ts';
import { mergePatch } from './merge-patch.ts';
import {
  jsonClone,
  type Prepared,
  prepareCreate,
  prepareDelete,
  prepareStatusUpdate,
  prepareUpdate,
} from './object-rules.ts';
import { type Mutation, WatchHub } from './watch-hub.ts';

export interface MemoryStoreOptions {
  /** Schema check run on every write (the CRD module provides one). */
  validator?: Validator;
  /** Mutations kept so a watch can resume from an older revision (default 10,000). */
  historyLimit?: number;
  /** How often each watch gets a BOOKMARK (default 15 s). */
  bookmarkIntervalMs?: number;
  now?: () => Date;
}

export class MemoryStore implements ResourceStore {
  #objects = new Map<string, Map<string, Resource>>();
  #revision = 0;
  #hub: WatchHub;
  #validator: Validator | undefined;
  #now: () => Date;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#validator = options.validator;
    this.#now = options.now ?? (() => new Date());
    this.#hub = new WatchHub({
      historyLimit: options.historyLimit ?? 10_000,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 15_000,
      currentRevision: () => this.#revision,
    });
  }

  /** The latest committed revision. */
  get revision(): number {
    return this.#revision;
  }

  /** Forgets watch history up to `revision` (default: now): watching from before it is Gone. */
  compact(revision: number = this.#revision): void {
    this.#hub.compact(revision);
  }

  async get<T extends Resource>(kind: ResourceKind, ref: ObjectRef): Promise<T> {
    this.#open();
    return structuredClone(this.#current(kind, ref)) as T;
  }

  async list<T extends Resource>(kind: ResourceKind, options: ListOptions = {}): Promise<ResourceList<T>> {
    this.#open();
    const items = [...this.#bucket(resourceKey(kind)).values()]
      .filter((o) => options.namespace === undefined || o.metadata.namespace === options.namespace)
      .filter((o) => matchesLabels(o, options.labelSelector))
      .sort((a, b) => objectKey(refOf(a)).localeCompare(objectKey(refOf(b))))
      .map((o) => structuredClone(o) as T);
    return { items, resourceVersion: String(this.#revision) };
  }

  watch<T extends Resource>(kind: ResourceKind, options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const from = Number(options.resourceVersion);
    if (this.#closed || options.resourceVersion === '' || !Number.isSafeInteger(from) || from < 0) {
      const failed = new Channel<WatchEvent<T>>();
      failed.fail(
        this.#closed
          ? new Error('the store is closed')
          : new InvalidError(`watch of ${kind.kind}`, [
              {
                path: 'resourceVersion',
                message: `"${options.resourceVersion}" is not a revision of this store`,
              },
            ]),
      );
      return failed;
    }
    const ns = kind.namespaced ? options.namespace : undefined;
    return this.#hub.watch(resourceKey(kind), ns, from, options.signal) as AsyncIterable<WatchEvent<T>>;
  }

  async create<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    this.#open();
    const next = prepareCreate(kind, obj, this.#now(), this.#validator);
    const key = objectKey(refOf(next));
    if (this.#bucket(resourceKey(kind)).has(key)) throw new AlreadyExistsError(describe(kind, refOf(next)));
    return (await this.#commit(kind, 'ADDED', next)) as T;
  }

  async update<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const current = this.#forWrite(kind, obj);
    return (await this.#apply(kind, prepareUpdate(kind, current, obj, this.#validator))) as T;
  }

  async updateStatus<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const current = this.#forWrite(kind, obj);
    return (await this.#apply(kind, prepareStatusUpdate(kind, current, obj.status, this.#validator))) as T;
  }

  async patchStatus<T extends Resource>(
    kind: ResourceKind,
    ref: ObjectRef,
    patch: Record<string, unknown>,
    options: { resourceVersion?: string } = {},
  ): Promise<T> {
    this.#open();
    const current = this.#current(kind, ref);
    this.#checkVersion(kind, current, options.resourceVersion);
    const status = mergePatch(current.status ?? {}, jsonClone(patch));
    return (await this.#apply(kind, prepareStatusUpdate(kind, current, status, this.#validator))) as T;
  }

  async delete(kind: ResourceKind, ref: ObjectRef, options: DeleteOptions = {}): Promise<void> {
    this.#open();
    const current = this.#current(kind, ref);
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== current.metadata.uid) {
      throw new ConflictError(describe(kind, ref), `precondition failed: uid is ${current.metadata.uid}`);
    }
    this.#checkVersion(kind, current, pre.resourceVersion);
    const action = prepareDelete(current, this.#now());
    if (action.action === 'remove') await this.#commit(kind, 'DELETED', jsonClone(current));
    else if (action.action === 'mark') await this.#commit(kind, 'MODIFIED', action.next);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#hub.closeAll();
  }

  #forWrite(kind: ResourceKind, obj: Resource): Resource {
    this.#open();
    const ref = kind.namespaced ? refOf(obj) : { name: obj.metadata.name };
    const current = this.#current(kind, ref);
    const rv = obj.metadata.resourceVersion;
    if (!rv) {
      throw new InvalidError(describe(kind, ref), [
        { path: 'metadata.resourceVersion', message: 'must be specified for an update' },
      ]);
    }
    this.#checkVersion(kind, current, rv);
    return current;
  }

  #checkVersion(kind: ResourceKind, current: Resource, rv: string | undefined): void {
    if (rv !== undefined && rv !== current.metadata.resourceVersion) {
      throw new ConflictError(describe(kind, refOf(current)));
    }
  }

  async #apply(kind: ResourceKind, prepared: Prepared): Promise<Resource> {
    if (!prepared.changed) return structuredClone(prepared.next);
    return this.#commit(kind, prepared.remove ? 'DELETED' : 'MODIFIED', prepared.next);
  }

  /** Assigns the next revision, stores and notifies watchers. */
  async #commit(kind: ResourceKind, type: Mutation['type'], obj: Resource): Promise<Resource> {
    this.#revision += 1;
    obj.metadata.resourceVersion = String(this.#revision);
    const resource = resourceKey(kind);
    const bucket = this.#bucket(resource);
    const key = objectKey(refOf(obj));
    if (type === 'DELETED') bucket.delete(key);
    else bucket.set(key, obj);
    const m: Mutation = { revision: this.#revision, type, resource, object: obj };
    this.#hub.publish(m);
    return structuredClone(obj);
  }

  #current(kind: ResourceKind, ref: ObjectRef): Resource {
    const key = objectKey(kind.namespaced ? ref : { name: ref.name });
    const obj = this.#bucket(resourceKey(kind)).get(key);
    if (!obj) throw new NotFoundError(describe(kind, ref));
    return obj;
  }

  #bucket(resource: string): Map<string, Resource> {
    let map = this.#objects.get(resource);
    if (!map) {
      map = new Map();
      this.#objects.set(resource, map);
    }
    return map;
  }

  #open(): void {
    if (this.#closed) throw new Error('the store is closed');
  }
}
