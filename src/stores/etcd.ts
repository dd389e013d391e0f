/**
 * ResourceStore on etcd (standalone mode: no Kubernetes, state replicated across the management
 * nodes). Objects are JSON under `<prefix>/<group>/<plural>/<namespace>/<name>` (`core` for the
 * core group, no namespace segment for cluster-scoped kinds); an object's resourceVersion is its
 * key's mod revision, so every write is a transaction comparing it, and a list's resourceVersion is
 * the revision it was read at. The Kubernetes object rules (generation, status, finalizers) are
 * object-rules.ts, shared with the embedded SQLite store.
 */
import type { Etcd3, IKeyValue, IRangeResponse, ITxnResponse, IWatchResponse, Watcher } from 'etcd3';
import { Channel } from '../runtime/channel.ts';
import {
  AlreadyExistsError,
  ConflictError,
  GoneError,
  InvalidError,
  NotFoundError,
} from '../runtime/errors.ts';
import {
  describe,
  matchesLabels,
  type ObjectRef,
  type Resource,
  type ResourceKind,
  refOf,
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
import { connectEtcd, type EtcdConnection, type EtcdConnectionOptions } from './etcd-client.ts';
import { mergePatch } from './merge-patch.ts';
import {
  jsonClone,
  type Prepared,
  prepareCreate,
  prepareDelete,
  prepareStatusUpdate,
  prepareUpdate,
} from './object-rules.ts';

export interface EtcdStoreOptions extends EtcdConnectionOptions {
  /** Key prefix of every object (default `/metalbox`); several installations may share one etcd. */
  prefix?: string;
  /** Schema check run on every write (the CRD module provides one). */
  validator?: Validator;
  /** How often a quiet watch gets a BOOKMARK (default 15 s). */
  bookmarkIntervalMs?: number;
  /** Keys per range request when listing (default 500). */
  listPageSize?: number;
  now?: () => Date;
}

/** Read-modify-write loops (patch, delete) give up after this many lost races. */
const MAX_RACES = 20;

export class EtcdStore implements ResourceStore {
  readonly prefix: string;
  readonly #conn: EtcdConnection;
  readonly #validator: Validator | undefined;
  readonly #now: () => Date;
  readonly #bookmarkIntervalMs: number;
  readonly #pageSize: number;
  readonly #watches = new Set<Channel<WatchEvent>>();
  #closed = false;

  constructor(options: EtcdStoreOptions) {
    this.prefix = (options.prefix ?? '/metalbox').replace(/\/+$/, '');
    if (!this.prefix.startsWith('/'))
      throw new Error(`etcd key prefix "${options.prefix}" must start with /`);
    this.#conn = connectEtcd(options);
    this.#validator = options.validator;
    this.#now = options.now ?? (() => new Date());
    this.#bookmarkIntervalMs = options.bookmarkIntervalMs ?? 15_000;
    this.#pageSize = options.listPageSize ?? 500;
  }

  /** The underlying client, e.g. for an EtcdElector on the same connection. */
  get client(): Etcd3 {
    return this.#conn.client;
  }

  get connection(): EtcdConnection {
    return this.#conn;
  }

  /** The etcd key of one object. */
  keyOf(kind: ResourceKind, ref: ObjectRef): string {
    return kind.namespaced
      ? `${this.#base(kind)}${ref.namespace}/${ref.name}`
      : `${this.#base(kind)}${ref.name}`;
  }

  /** The store's current revision. */
  async revision(): Promise<number> {
    const res = await this.#conn.call('read the etcd revision', (o) =>
      this.#conn.client.kv.range({ key: Buffer.from(`${this.prefix}/`), limit: 1, keys_only: true }, o),
    );
    return Number(res.header.revision);
  }

  /** Drops history up to `revision` (default: now): watches from before it are Gone. */
  async compact(revision?: number): Promise<void> {
    const rev = revision ?? (await this.revision());
    await this.#conn.call('compact etcd', (o) =>
      this.#conn.client.kv.compact({ revision: String(rev), physical: true }, o),
    );
  }

  async get<T extends Resource>(kind: ResourceKind, ref: ObjectRef): Promise<T> {
    this.#open();
    return (await this.#read(kind, ref)).object as T;
  }

  async list<T extends Resource>(kind: ResourceKind, options: ListOptions = {}): Promise<ResourceList<T>> {
    this.#open();
    const namespace = kind.namespaced ? options.namespace : undefined;
    if (namespace !== undefined && !safeSegment(namespace)) {
      return { items: [], resourceVersion: String(await this.revision()) };
    }
    const prefix = Buffer.from(
      namespace === undefined ? this.#base(kind) : `${this.#base(kind)}${namespace}/`,
    );
    const end = prefixEnd(prefix);
    // Pages are read at the first page's revision; if that is compacted meanwhile, start over.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#listAt<T>(kind, prefix, end, options);
      } catch (error) {
        if (!isCompacted(error) || attempt >= 3) throw error;
      }
    }
  }

  async #listAt<T extends Resource>(
    kind: ResourceKind,
    prefix: Buffer,
    end: Buffer,
    options: ListOptions,
  ): Promise<ResourceList<T>> {
    const items: T[] = [];
    let revision: string | undefined;
    let from = prefix;
    for (;;) {
      const page: IRangeResponse = await this.#conn.call(`list ${kind.plural}`, (o) =>
        this.#conn.client.kv.range(
          {
            key: from,
            range_end: end,
            limit: this.#pageSize,
            ...(revision === undefined ? {} : { revision }),
          },
          o,
        ),
      );
      revision ??= page.header.revision;
      for (const kv of page.kvs) {
        const obj = decode(kv) as T;
        if (matchesLabels(obj, options.labelSelector)) items.push(obj);
      }
      const last = page.kvs.at(-1);
      if (!page.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { items, resourceVersion: revision };
  }

  watch<T extends Resource>(kind: ResourceKind, options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const channel = new Channel<WatchEvent<T>>(options.signal);
    const from = Number(options.resourceVersion);
    if (this.#closed) {
      channel.fail(new Error('the store is closed'));
      return channel;
    }
    if (options.resourceVersion === '' || !Number.isSafeInteger(from) || from < 0) {
      channel.fail(
        new InvalidError(`watch of ${kind.kind}`, [
          {
            path: 'resourceVersion',
            message: `"${options.resourceVersion}" is not a revision of this store`,
          },
        ]),
      );
      return channel;
    }
    if (channel.closed) return channel;
    const namespace = kind.namespaced ? options.namespace : undefined;
    const prefix =
      namespace === undefined
        ? this.#base(kind)
        : `${this.#base(kind)}${safeSegment(namespace) ? namespace : '\0'}/`;
    this.#watches.add(channel as Channel<WatchEvent>);
    // Everything up to `delivered` has been pushed: where a bookmark points and a re-watch resumes.
    let delivered = from;
    let watcher: Watcher | undefined;
    let reconnects = 0;
    let retry: NodeJS.Timeout | undefined;
    const bookmarks = setInterval(() => {
      if (watcher) channel.push({ type: 'BOOKMARK', resourceVersion: String(delivered) });
    }, this.#bookmarkIntervalMs);
    const drop = () => {
      const w = watcher;
      watcher = undefined;
      w?.removeAllListeners();
      w?.cancel().catch(() => {});
    };
    channel.onClose(() => {
      clearInterval(bookmarks);
      clearTimeout(retry);
      this.#watches.delete(channel as Channel<WatchEvent>);
      drop();
    });
    const canceled = async (error: Error) => {
      drop();
      // etcd cancels a watch whose start revision was compacted without giving a reason: ask.
      const gone = await this.#conn.client.kv
        .range({ key: Buffer.from(prefix), limit: 1, keys_only: true, revision: String(delivered + 1) })
        .then(
          () => false,
          (e: unknown) => isCompacted(e),
        );
      channel.fail(
        gone
          ? new GoneError(`${kind.plural} after resourceVersion ${delivered}: etcd compacted that revision`)
          : new Error(`watch of ${kind.plural} ended by etcd: ${error.message}`),
      );
    };
    const onData = (res: IWatchResponse) => {
      reconnects = 0;
      if (res.events.length === 0) {
        // A progress notification: the server vouches nothing is pending up to here.
        delivered = Math.max(delivered, Number(res.header.revision));
        channel.push({ type: 'BOOKMARK', resourceVersion: String(delivered) });
        return;
      }
      for (const ev of res.events) {
        if (ev.type === 'Put') {
          channel.push({ type: ev.kv.version === '1' ? 'ADDED' : 'MODIFIED', object: decode(ev.kv) as T });
        } else {
          const last = ev.prev_kv ? (decode(ev.prev_kv) as T) : (stub(kind, ev.kv.key.toString()) as T);
          last.metadata.resourceVersion = ev.kv.mod_revision;
          channel.push({ type: 'DELETED', object: last });
        }
        delivered = Math.max(delivered, Number(ev.kv.mod_revision));
      }
    };
    // etcd3 resumes a broken stream from the last *header* revision, which can skip events still
    // in flight; so a broken stream is dropped and watched again from what was delivered.
    const attach = () => {
      if (channel.closed) return;
      // watcher() attaches at once (create() would resolve a tick after events may have arrived).
      const w = this.#conn.client
        .watch()
        .prefix(prefix)
        .startRevision(String(delivered + 1))
        .withPreviousKV()
        .watcher();
      watcher = w;
      w.on('data', onData);
      w.on('error', (error: Error) => void canceled(error));
      w.on('disconnected', () => {
        drop();
        retry = setTimeout(attach, Math.min(5000, 100 * 2 ** reconnects++));
      });
    };
    attach();
    return channel;
  }

  async create<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    this.#open();
    const next = prepareCreate(kind, obj, this.#now(), this.#validator);
    const ref = refOf(next);
    const result = await this.#commit(kind, ref, 'create', '0', encode(next));
    if (!('revision' in result)) throw new AlreadyExistsError(describe(kind, ref));
    next.metadata.resourceVersion = result.revision;
    return next as T;
  }

  async update<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const current = await this.#forWrite(kind, obj);
    return (await this.#apply(kind, current, prepareUpdate(kind, current, obj, this.#validator))) as T;
  }

  async updateStatus<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const current = await this.#forWrite(kind, obj);
    return (await this.#apply(
      kind,
      current,
      prepareStatusUpdate(kind, current, obj.status, this.#validator),
    )) as T;
  }

  async patchStatus<T extends Resource>(
    kind: ResourceKind,
    ref: ObjectRef,
    patch: Record<string, unknown>,
    options: { resourceVersion?: string } = {},
  ): Promise<T> {
    this.#open();
    for (let race = 0; ; race++) {
      const { object: current } = await this.#read(kind, ref);
      checkVersion(kind, current, options.resourceVersion);
      const status = mergePatch(current.status ?? {}, jsonClone(patch));
      try {
        return (await this.#apply(
          kind,
          current,
          prepareStatusUpdate(kind, current, status, this.#validator),
        )) as T;
      } catch (error) {
        // Without a resourceVersion the patch is unconditional: re-read and merge again.
        if (!(error instanceof ConflictError) || options.resourceVersion !== undefined || race >= MAX_RACES)
          throw error;
      }
    }
  }

  async delete(kind: ResourceKind, ref: ObjectRef, options: DeleteOptions = {}): Promise<void> {
    this.#open();
    const pre = options.preconditions ?? {};
    for (let race = 0; ; race++) {
      const { object: current } = await this.#read(kind, ref);
      if (pre.uid !== undefined && pre.uid !== current.metadata.uid) {
        throw new ConflictError(describe(kind, ref), `precondition failed: uid is ${current.metadata.uid}`);
      }
      checkVersion(kind, current, pre.resourceVersion);
      const action = prepareDelete(current, this.#now());
      if (action.action === 'none') return;
      const rv = current.metadata.resourceVersion!;
      const result =
        action.action === 'remove'
          ? await this.#commit(kind, ref, 'delete', rv)
          : await this.#commit(kind, ref, 'delete', rv, encode(action.next));
      if ('revision' in result) return;
      if ('missing' in result) throw new NotFoundError(describe(kind, ref));
      if (pre.resourceVersion !== undefined || race >= MAX_RACES)
        throw new ConflictError(describe(kind, ref));
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of [...this.#watches]) channel.close();
    this.#conn.close();
  }

  async #forWrite(kind: ResourceKind, obj: Resource): Promise<Resource> {
    this.#open();
    const ref = kind.namespaced ? refOf(obj) : { name: obj.metadata.name };
    const { object: current } = await this.#read(kind, ref);
    const rv = obj.metadata.resourceVersion;
    if (!rv) {
      throw new InvalidError(describe(kind, ref), [
        { path: 'metadata.resourceVersion', message: 'must be specified for an update' },
      ]);
    }
    checkVersion(kind, current, rv);
    return current;
  }

  async #apply(kind: ResourceKind, current: Resource, prepared: Prepared): Promise<Resource> {
    const { next } = prepared;
    if (!prepared.changed) return next;
    const ref = refOf(current);
    const result = prepared.remove
      ? await this.#commit(kind, ref, 'update', current.metadata.resourceVersion!)
      : await this.#commit(kind, ref, 'update', current.metadata.resourceVersion!, encode(next));
    if ('revision' in result) {
      next.metadata.resourceVersion = result.revision;
      return next;
    }
    if ('missing' in result) throw new NotFoundError(describe(kind, ref));
    throw new ConflictError(describe(kind, ref));
  }

  /**
   * One transaction: if the key's mod revision is still `expected` ('0': absent), put `value` (or
   * delete the key when there is none); otherwise read it. When an attempt failed in transport and
   * was retried, a failed compare may be our own earlier attempt having landed: the stored bytes
   * (which carry a fresh uid or the new content) tell.
   */
  async #commit(
    kind: ResourceKind,
    ref: ObjectRef,
    verb: string,
    expected: string,
    value?: Buffer,
  ): Promise<{ revision: string } | { current: IKeyValue } | { missing: true }> {
    const key = Buffer.from(this.keyOf(kind, ref));
    let uncertain = false;
    const res: ITxnResponse = await this.#conn.call(
      `${verb} ${describe(kind, ref)}`,
      (o) =>
        this.#conn.client.kv.txn(
          {
            compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: expected }],
            success: [value ? { request_put: { key, value } } : { request_delete_range: { key } }],
            failure: [{ request_range: { key } }],
          },
          o,
        ),
      () => {
        uncertain = true;
      },
    );
    if (res.succeeded) return { revision: res.header.revision };
    const current = res.responses[0]?.response_range?.kvs[0];
    if (uncertain) {
      if (!value && !current) return { revision: res.header.revision };
      if (value && current?.value.equals(value)) return { revision: current.mod_revision };
    }
    return current ? { current } : { missing: true };
  }

  async #read(kind: ResourceKind, ref: ObjectRef): Promise<{ object: Resource; kv: IKeyValue }> {
    if (!safeSegment(ref.name) || (kind.namespaced && !safeSegment(ref.namespace ?? ''))) {
      throw new NotFoundError(describe(kind, ref));
    }
    const key = Buffer.from(this.keyOf(kind, ref));
    const res = await this.#conn.call(`get ${describe(kind, ref)}`, (o) =>
      this.#conn.client.kv.range({ key }, o),
    );
    const kv = res.kvs[0];
    if (!kv) throw new NotFoundError(describe(kind, ref));
    return { object: decode(kv), kv };
  }

  #base(kind: ResourceKind): string {
    return `${this.prefix}/${kind.group || 'core'}/${kind.plural}/`;
  }

  #open(): void {
    if (this.#closed) throw new Error('the store is closed');
  }
}

function checkVersion(kind: ResourceKind, current: Resource, rv: string | undefined): void {
  if (rv !== undefined && rv !== current.metadata.resourceVersion) {
    throw new ConflictError(describe(kind, refOf(current)));
  }
}

/** The stored form: the object without resourceVersion (that is the key's mod revision). */
function encode(obj: Resource): Buffer {
  const { resourceVersion: _rv, ...metadata } = obj.metadata;
  return Buffer.from(JSON.stringify({ ...obj, metadata }));
}

function decode(kv: IKeyValue): Resource {
  let obj: Resource;
  try {
    obj = JSON.parse(kv.value.toString('utf8')) as Resource;
  } catch {
    throw new Error(`etcd key ${kv.key.toString()} does not hold a JSON object`);
  }
  obj.metadata.resourceVersion = kv.mod_revision;
  return obj;
}

/** The identity of a deleted object whose last state etcd no longer has. */
function stub(kind: ResourceKind, key: string): Resource {
  const parts = key.split('/');
  const name = parts.at(-1) ?? '';
  return {
    apiVersion: kind.group ? `${kind.group}/${kind.version}` : kind.version,
    kind: kind.kind,
    metadata: kind.namespaced ? { namespace: parts.at(-2) ?? '', name } : { name },
  };
}

/** Names and namespaces become key segments: never let one carry a separator. */
function safeSegment(s: string): boolean {
  return s !== '' && !s.includes('/') && !s.includes('\0');
}

/** The first key after every key starting with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function isCompacted(error: unknown): boolean {
  return error instanceof Error && /required revision has been compacted/.test(error.message);
}
