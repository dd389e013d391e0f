/**
 * The embedded store (demo, dev, single node) on SQLite, after kine, the store k3s runs on: one
 * append-only `log` table whose AUTOINCREMENT id is the revision (an object's resourceVersion is
 * the id of its latest row), rows carrying create and previous revisions, deletes written as
 * tombstone rows, and compaction deleting superseded rows and old tombstones. WAL journal with
 * synchronous=FULL: a write is acknowledged, and shown to watchers, only after its commit is on
 * disk. Several processes may open one directory at once (controller, CLI, readers): every write is
 * a compare-and-swap inside one IMMEDIATE transaction, and watches poll `PRAGMA data_version`,
 * which changes when another connection commits.
 *
 * node:sqlite is synchronous: a commit blocks the event loop for its fsync. Writes issued in one
 * event-loop turn are therefore group-committed (one transaction, one fsync); each keeps its own
 * result (one write's conflict does not fail its neighbours).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdir, open, stat, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
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
import { type LegacyState, legacyJournalIn, retireLegacyJournal } from './journal-import.ts';
import { mergePatch } from './merge-patch.ts';
import {
  jsonClone,
  type Prepared,
  prepareCreate,
  prepareDelete,
  prepareStatusUpdate,
  prepareUpdate,
} from './object-rules.ts';

/** The database file inside a store directory. */
export const DATABASE_FILE = 'store.db';
const FORMAT = '1';

export interface SqliteStoreOptions {
  /** Schema check run on every write (the CRD module provides one). */
  validator?: Validator;
  /** Revisions kept for watches to resume from; older ones are compacted (default 10,000). */
  historyLimit?: number;
  /** How often each watch gets a BOOKMARK (default 15 s). */
  bookmarkIntervalMs?: number;
  /** How often watches look for other processes' commits (default 100 ms). */
  pollIntervalMs?: number;
  /** fsync every commit (default true). Off only for throwaway data (the demo, tests). */
  durable?: boolean;
  /** How long a write waits for another process's transaction (default 5 s). */
  busyTimeoutMs?: number;
  now?: () => Date;
}

/** The store's file cannot be read as a metalbox store: names the file; never opened as empty. */
const REFUSED = 'refusing to open it (restore it from a backup, or move it away to start empty)';

export class StoreDamagedError extends Error {
  readonly path: string;
  constructor(path: string, problem: string, cause?: unknown) {
    super(`${path}: ${problem}`, { cause });
    this.name = 'StoreDamagedError';
    this.path = path;
  }
}

/** A write SQLite could not make durable (disk full, I/O error); nothing of it was stored. */
export class StoreWriteError extends Error {
  readonly path: string;
  constructor(path: string, problem: string, cause?: unknown) {
    super(`${path}: ${problem}`, { cause });
    this.name = 'StoreWriteError';
    this.path = path;
  }
}

interface Row {
  id: number;
  resource: string;
  namespace: string;
  name: string;
  created: number;
  deleted: number;
  create_revision: number;
  value: string;
}

type Outcome =
  | { write: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Resource }
  | { unchanged: Resource }
  | undefined;

interface WriteOp {
  kind: ResourceKind;
  ref: ObjectRef;
  /** Decides the write from the current object, inside the transaction; throws to refuse. */
  decide: (current: Resource | undefined) => Outcome;
  resolve: (obj: Resource | undefined) => void;
  reject: (e: unknown) => void;
}

interface Watcher {
  resource: string;
  namespace: string | undefined;
  delivered: number;
  channel: Channel<WatchEvent>;
}

// SQLite's primary result codes that mean "this write could not be stored".
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_NOTADB = 26;

export class SqliteStore implements ResourceStore {
  readonly dir: string;
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #validator: Validator | undefined;
  readonly #now: () => Date;
  readonly #historyLimit: number;
  readonly #bookmarkIntervalMs: number;
  readonly #pollIntervalMs: number;
  readonly #sql: ReturnType<typeof prepareStatements>;
  #queue: WriteOp[] = [];
  #flushing = false;
  #watchers = new Set<Watcher>();
  #poller: NodeJS.Timeout | undefined;
  /** Every row up to here has been offered to this process's watchers. */
  #seen = 0;
  #dataVersion = -1;
  #compacted = 0;
  #closed = false;

  /** Use SqliteStore.open. */
  private constructor(dir: string, path: string, db: DatabaseSync, options: SqliteStoreOptions) {
    this.dir = dir;
    this.path = path;
    this.#db = db;
    this.#validator = options.validator;
    this.#now = options.now ?? (() => new Date());
    this.#historyLimit = Math.max(1, options.historyLimit ?? 10_000);
    this.#bookmarkIntervalMs = options.bookmarkIntervalMs ?? 15_000;
    this.#pollIntervalMs = options.pollIntervalMs ?? 100;
    this.#sql = prepareStatements(db);
    this.#seen = this.revision;
    this.#compacted = this.#compactedRevision();
  }

  /**
   * Opens (creating if needed) the store in `dir`. A directory holding the old file store's
   * snapshot.json/journal.jsonl and no database yet is imported once, keeping every object's
   * resourceVersion. Throws StoreDamagedError when the database is not intact.
   */
  static async open(dir: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
    await mkdir(dir, { recursive: true });
    const path = join(dir, DATABASE_FILE);
    if (!existsSync(path)) await create(dir, path);
    const size = (await stat(path)).size;
    if (size === 0) throw new StoreDamagedError(path, `the database file is empty; ${REFUSED}`);
    const { DatabaseSync } = loadSqlite();
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 });
      db.exec(
        `PRAGMA journal_mode = WAL; PRAGMA synchronous = ${options.durable === false ? 'OFF' : 'FULL'}`,
      );
      const check = db.prepare('PRAGMA quick_check').all() as { quick_check: string }[];
      if (check.length !== 1 || check[0]!.quick_check !== 'ok') {
        const detail = check
          .slice(0, 3)
          .map((r) => r.quick_check)
          .join('; ');
        throw new StoreDamagedError(path, `the database is damaged (${detail}); ${REFUSED}`);
      }
      const format = readFormat(db);
      if (format === undefined)
        throw new StoreDamagedError(path, `not a metalbox store (no format record); ${REFUSED}`);
      if (format !== FORMAT) throw new StoreDamagedError(path, `unknown store format ${format}; ${REFUSED}`);
      return new SqliteStore(dir, path, db, options);
    } catch (error) {
      try {
        db?.close();
      } catch {}
      if (error instanceof StoreDamagedError) throw error;
      const code = sqliteCode(error);
      if (code === SQLITE_NOTADB || code === SQLITE_CORRUPT) {
        throw new StoreDamagedError(
          path,
          `the database is damaged (${(error as Error).message}); ${REFUSED}`,
          error,
        );
      }
      throw new Error(`cannot open the store ${path}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The latest committed revision (also after its row was compacted away). */
  get revision(): number {
    return (this.#sql.revision.get() as { seq: number } | undefined)?.seq ?? 0;
  }

  /**
   * Deletes history up to `revision` (default: now): superseded rows and tombstones. Watching from
   * before it is then Gone, here and in every other process.
   */
  compact(revision: number = this.revision): void {
    this.#open();
    const upTo = Math.min(revision, this.revision);
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const current = this.#compactedRevision();
      if (upTo > current) {
        this.#sql.compact.run({ rev: upTo });
        this.#sql.setCompacted.run({ rev: String(upTo) });
      }
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#rollback();
      throw this.#writeError(error);
    }
    this.#compacted = Math.max(this.#compacted, upTo);
  }

  /**
   * Takes or renews the lease `name` for `holder` unless another holder's is still live: not
   * expired, and its process still running (every process on a store directory runs on this
   * machine, so a crashed holder is taken over at once). For SqliteElector.
   */
  tryLease(name: string, holder: string, durationMs: number): { acquired: boolean; holder: string } {
    this.#open();
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const now = Date.now();
      const row = this.#db.prepare('SELECT holder, pid, expires_at FROM leases WHERE name = ?').get(name) as
        | { holder: string; pid: number; expires_at: number }
        | undefined;
      if (row && row.holder !== holder && row.expires_at > now && alive(row.pid)) {
        this.#db.exec('COMMIT');
        return { acquired: false, holder: row.holder };
      }
      this.#db
        .prepare(
          `INSERT INTO leases (name, holder, pid, expires_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, pid = excluded.pid,
             expires_at = excluded.expires_at`,
        )
        .run(name, holder, process.pid, now + durationMs);
      this.#db.exec('COMMIT');
      return { acquired: true, holder };
    } catch (error) {
      this.#rollback();
      throw this.#writeError(error);
    }
  }

  /** Gives the lease up if `holder` has it, so a standby takes over at once. */
  releaseLease(name: string, holder: string): void {
    this.#open();
    this.#db.prepare('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
  }

  async get<T extends Resource>(kind: ResourceKind, ref: ObjectRef): Promise<T> {
    this.#open();
    const row = this.#latest(resourceKey(kind), kind, ref);
    if (!row || row.deleted) throw new NotFoundError(describe(kind, ref));
    return decode(row, this.path) as T;
  }

  async list<T extends Resource>(kind: ResourceKind, options: ListOptions = {}): Promise<ResourceList<T>> {
    this.#open();
    const namespace = kind.namespaced ? options.namespace : undefined;
    // One read transaction: the rows and the revision are the same snapshot.
    this.#db.exec('BEGIN');
    let rows: Row[];
    let revision: number;
    try {
      rows = (namespace === undefined
        ? this.#sql.list.all({ resource: resourceKey(kind) })
        : this.#sql.listNamespace.all({ resource: resourceKey(kind), namespace })) as unknown as Row[];
      revision = this.revision;
    } finally {
      this.#db.exec('COMMIT');
    }
    const items: T[] = [];
    for (const row of rows) {
      const obj = decode(row, this.path);
      if (matchesLabels(obj, options.labelSelector)) items.push(obj as T);
    }
    return { items, resourceVersion: String(revision) };
  }

  watch<T extends Resource>(kind: ResourceKind, options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const channel = new Channel<WatchEvent>(options.signal);
    const from = Number(options.resourceVersion);
    if (this.#closed) {
      channel.fail(new Error('the store is closed'));
      return channel as AsyncIterable<WatchEvent<T>>;
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
      return channel as AsyncIterable<WatchEvent<T>>;
    }
    if (channel.closed) return channel as AsyncIterable<WatchEvent<T>>;
    const watcher: Watcher = {
      resource: resourceKey(kind),
      namespace: kind.namespaced ? options.namespace : undefined,
      delivered: from,
      channel,
    };
    // History first, read in one snapshot with the compaction point; live rows come from the poll.
    this.#db.exec('BEGIN');
    try {
      const snapshot = this.revision;
      const compacted = this.#compactedRevision();
      if (from < compacted) {
        channel.fail(
          new GoneError(`resourceVersion ${from} is older than the oldest kept revision ${compacted}`),
        );
        return channel as AsyncIterable<WatchEvent<T>>;
      }
      for (const row of this.#sql.since.iterate({
        after: from,
        resource: watcher.resource,
      }) as Iterable<Row>) {
        this.#offer(watcher, row);
      }
      watcher.delivered = Math.max(watcher.delivered, snapshot);
      // The first watch starts the poll here: nothing before the snapshot needs offering again.
      if (this.#watchers.size === 0) this.#seen = snapshot;
    } finally {
      this.#db.exec('COMMIT');
    }
    this.#watchers.add(watcher);
    this.#startPolling();
    const bookmarks = setInterval(() => {
      channel.push({ type: 'BOOKMARK', resourceVersion: String(Math.max(watcher.delivered, this.#seen)) });
    }, this.#bookmarkIntervalMs);
    channel.onClose(() => {
      clearInterval(bookmarks);
      this.#watchers.delete(watcher);
      if (this.#watchers.size === 0) this.#stopPolling();
    });
    return channel as AsyncIterable<WatchEvent<T>>;
  }

  async create<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    this.#open();
    const next = prepareCreate(kind, obj, this.#now(), this.#validator);
    const ref = refOf(next);
    return this.#write(kind, ref, (current) => {
      if (current) throw new AlreadyExistsError(describe(kind, ref));
      return { write: 'ADDED', object: next };
    }) as Promise<T>;
  }

  async update<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    return this.#update(kind, obj, (current) => prepareUpdate(kind, current, obj, this.#validator));
  }

  async updateStatus<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    return this.#update(kind, obj, (current) =>
      prepareStatusUpdate(kind, current, obj.status, this.#validator),
    );
  }

  async patchStatus<T extends Resource>(
    kind: ResourceKind,
    ref: ObjectRef,
    patch: Record<string, unknown>,
    options: { resourceVersion?: string } = {},
  ): Promise<T> {
    this.#open();
    return this.#write(kind, ref, (current) => {
      if (!current) throw new NotFoundError(describe(kind, ref));
      checkVersion(kind, current, options.resourceVersion);
      const status = mergePatch(current.status ?? {}, jsonClone(patch));
      return outcome(prepareStatusUpdate(kind, current, status, this.#validator));
    }) as Promise<T>;
  }

  async delete(kind: ResourceKind, ref: ObjectRef, options: DeleteOptions = {}): Promise<void> {
    this.#open();
    const pre = options.preconditions ?? {};
    await this.#write(kind, ref, (current) => {
      if (!current) throw new NotFoundError(describe(kind, ref));
      if (pre.uid !== undefined && pre.uid !== current.metadata.uid) {
        throw new ConflictError(describe(kind, ref), `precondition failed: uid is ${current.metadata.uid}`);
      }
      checkVersion(kind, current, pre.resourceVersion);
      const action = prepareDelete(current, this.#now());
      if (action.action === 'remove') return { write: 'DELETED', object: current };
      if (action.action === 'mark') return { write: 'MODIFIED', object: action.next };
      return { unchanged: current };
    });
  }

  /** Writes what is queued, ends every watch and closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#stopPolling();
    for (const w of [...this.#watchers]) w.channel.close();
    this.#db.close();
  }

  async #update<T extends Resource>(
    kind: ResourceKind,
    obj: T,
    prepare: (current: Resource) => Prepared,
  ): Promise<T> {
    this.#open();
    const ref = kind.namespaced ? refOf(obj) : { name: obj.metadata.name };
    const rv = obj.metadata.resourceVersion;
    if (!rv) {
      throw new InvalidError(describe(kind, ref), [
        { path: 'metadata.resourceVersion', message: 'must be specified for an update' },
      ]);
    }
    return this.#write(kind, ref, (current) => {
      if (!current) throw new NotFoundError(describe(kind, ref));
      checkVersion(kind, current, rv);
      return outcome(prepare(current));
    }) as Promise<T>;
  }

  /** Queues a write for this turn's group commit; resolves once it is durable. */
  #write(kind: ResourceKind, ref: ObjectRef, decide: WriteOp['decide']): Promise<Resource | undefined> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind, ref, decide, resolve, reject });
      if (this.#queue.length === 1 && !this.#flushing) setImmediate(() => this.#flush());
    });
  }

  /** One transaction for every queued write: decide each against the current row, insert, commit. */
  #flush(): void {
    const batch = this.#queue.splice(0);
    if (batch.length === 0 || this.#closed) {
      for (const op of batch) op.reject(new Error('the store is closed'));
      return;
    }
    this.#flushing = true;
    const settled: { op: WriteOp; result?: Resource; error?: unknown }[] = [];
    const written: Row[] = [];
    try {
      this.#db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      this.#flushing = false;
      const failure = this.#writeError(error);
      for (const op of batch) op.reject(failure);
      return;
    }
    try {
      let revision = this.revision;
      for (const op of batch) {
        const resource = resourceKey(op.kind);
        const row = this.#latest(resource, op.kind, op.ref);
        const current = row && !row.deleted ? decode(row, this.path) : undefined;
        let decided: Outcome;
        try {
          decided = op.decide(current);
        } catch (error) {
          settled.push({ op, error });
          continue;
        }
        if (!decided || 'unchanged' in decided) {
          settled.push({ op, result: decided?.unchanged });
          continue;
        }
        revision += 1;
        const obj = decided.object;
        const inserted: Row = {
          id: revision,
          resource,
          namespace: op.kind.namespaced ? (obj.metadata.namespace ?? '') : '',
          name: obj.metadata.name,
          created: decided.write === 'ADDED' ? 1 : 0,
          deleted: decided.write === 'DELETED' ? 1 : 0,
          create_revision: decided.write === 'ADDED' ? revision : (row?.create_revision ?? revision),
          value: encode(obj),
        };
        this.#sql.insert.run({ ...inserted, prev_revision: row?.id ?? 0 });
        written.push(inserted);
        // decide() returns a fresh object (object-rules copies): hand it out as the result.
        obj.metadata.resourceVersion = String(revision);
        settled.push({ op, result: obj });
      }
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#rollback();
      this.#flushing = false;
      const failure = this.#writeError(error);
      for (const s of settled) if (s.error === undefined) s.error = failure;
      for (const op of batch.slice(settled.length)) settled.push({ op, error: failure });
      for (const s of settled) {
        if (s.error !== undefined) s.op.reject(s.error);
        else s.op.resolve(s.result);
      }
      return;
    }
    this.#flushing = false;
    // Durable now: show it to this process's watchers, then acknowledge.
    this.#dispatch(written);
    for (const s of settled) {
      if (s.error !== undefined) s.op.reject(s.error);
      else s.op.resolve(s.result);
    }
    const last = written.at(-1)?.id ?? 0;
    if (last - this.#compacted > this.#historyLimit + (this.#historyLimit >> 2)) {
      try {
        this.compact(last - this.#historyLimit);
      } catch {
        // Not fatal: history stays longer; the next commit tries again.
      }
    }
    if (this.#queue.length > 0) setImmediate(() => this.#flush());
  }

  /** Our own rows go out directly unless another process committed in between (then read the log). */
  #dispatch(written: Row[]): void {
    if (written.length === 0 || this.#watchers.size === 0) return;
    if (written[0]!.id !== this.#seen + 1) {
      this.#pollOrFail(true);
      return;
    }
    for (const row of written) for (const w of this.#watchers) this.#offer(w, row);
    this.#seen = written.at(-1)!.id;
  }

  /** Offers every row after the last one seen to the watchers; `force` skips the cheap check. */
  #poll(force = false): void {
    if (this.#closed) return;
    const version = (this.#sql.dataVersion.get() as { data_version: number }).data_version;
    if (!force && version === this.#dataVersion) return;
    this.#dataVersion = version;
    this.#db.exec('BEGIN');
    try {
      const compacted = this.#compactedRevision();
      this.#compacted = Math.max(this.#compacted, compacted);
      for (const w of this.#watchers) {
        // Rows this watch has not seen may be gone (another process compacted): it must relist.
        if (w.delivered < compacted && this.#seen < compacted) {
          w.channel.fail(
            new GoneError(
              `resourceVersion ${w.delivered} is older than the oldest kept revision ${compacted}`,
            ),
          );
        }
      }
      for (const row of this.#sql.all.iterate({ after: this.#seen }) as Iterable<Row>) {
        for (const w of this.#watchers) this.#offer(w, row);
        this.#seen = row.id;
      }
      this.#seen = Math.max(this.#seen, this.revision);
    } finally {
      this.#db.exec('COMMIT');
    }
  }

  #offer(w: Watcher, row: Row): void {
    if (row.id <= w.delivered || row.resource !== w.resource) return;
    if (w.namespace !== undefined && row.namespace !== w.namespace) return;
    w.delivered = row.id;
    const type = row.deleted ? 'DELETED' : row.created ? 'ADDED' : 'MODIFIED';
    w.channel.push({ type, object: decode(row, this.path) });
  }

  #startPolling(): void {
    if (this.#poller) return;
    this.#dataVersion = (this.#sql.dataVersion.get() as { data_version: number }).data_version;
    this.#poll(true);
    this.#poller = setInterval(() => this.#pollOrFail(), this.#pollIntervalMs);
  }

  /** A poll that cannot read the log ends every watch with the reason (they re-watch or relist). */
  #pollOrFail(force = false): void {
    try {
      this.#poll(force);
    } catch (error) {
      for (const w of [...this.#watchers]) {
        w.channel.fail(
          new Error(`watch of ${this.path} failed: ${(error as Error).message}`, { cause: error }),
        );
      }
    }
  }

  #stopPolling(): void {
    clearInterval(this.#poller);
    this.#poller = undefined;
  }

  #latest(resource: string, kind: ResourceKind, ref: ObjectRef): Row | undefined {
    return this.#sql.latest.get({
      resource,
      namespace: kind.namespaced ? (ref.namespace ?? '') : '',
      name: ref.name,
    }) as Row | undefined;
  }

  #compactedRevision(): number {
    const row = this.#sql.getCompacted.get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  #rollback(): void {
    try {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
    } catch {
      // SQLite may have rolled back on its own (it does after SQLITE_FULL in some cases).
    }
  }

  #writeError(error: unknown): Error {
    const code = sqliteCode(error);
    const message = (error as Error).message;
    if (code === SQLITE_FULL) {
      return new StoreWriteError(
        this.path,
        `the disk is full: the store is read-only until space is freed (this write was not stored; ${message})`,
        error,
      );
    }
    if (code === undefined) return error as Error;
    return new StoreWriteError(this.path, `the write was not stored: ${message}`, error);
  }

  #open(): void {
    if (this.#closed) throw new Error('the store is closed');
  }
}

function prepareStatements(db: DatabaseSync) {
  const columns = 'id, resource, namespace, name, created, deleted, create_revision, value';
  const statements = {
    revision: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'log'"),
    dataVersion: db.prepare('PRAGMA data_version'),
    latest: db.prepare(
      `SELECT ${columns} FROM log WHERE resource = :resource AND namespace = :namespace AND name = :name
       ORDER BY id DESC LIMIT 1`,
    ),
    list: db.prepare(
      `SELECT ${columns} FROM log WHERE id IN
         (SELECT MAX(id) FROM log WHERE resource = :resource GROUP BY namespace, name)
       AND deleted = 0 ORDER BY namespace, name`,
    ),
    listNamespace: db.prepare(
      `SELECT ${columns} FROM log WHERE id IN
         (SELECT MAX(id) FROM log WHERE resource = :resource AND namespace = :namespace GROUP BY name)
       AND deleted = 0 ORDER BY name`,
    ),
    since: db.prepare(`SELECT ${columns} FROM log WHERE resource = :resource AND id > :after ORDER BY id`),
    all: db.prepare(`SELECT ${columns} FROM log WHERE id > :after ORDER BY id`),
    insert: db.prepare(
      `INSERT INTO log (id, resource, namespace, name, created, deleted, create_revision, prev_revision, value)
       VALUES (:id, :resource, :namespace, :name, :created, :deleted, :create_revision, :prev_revision, :value)`,
    ),
    // Rows at or below the revision that a later row replaced, and tombstones: nobody needs them.
    compact: db.prepare(
      `DELETE FROM log WHERE id <= :rev AND (deleted = 1 OR id IN (SELECT prev_revision FROM log))`,
    ),
    getCompacted: db.prepare("SELECT value FROM meta WHERE key = 'compact_revision'"),
    setCompacted: db.prepare(
      "INSERT INTO meta (key, value) VALUES ('compact_revision', :rev) ON CONFLICT (key) DO UPDATE SET value = :rev",
    ),
  };
  return statements as { [K in keyof typeof statements]: StatementSync };
}

const SCHEMA = `
  CREATE TABLE log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value TEXT NOT NULL
  );
  CREATE INDEX log_key ON log (resource, namespace, name, id);
  CREATE INDEX log_resource ON log (resource, id);
  CREATE INDEX log_prev ON log (prev_revision);
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, pid INTEGER NOT NULL, expires_at INTEGER NOT NULL);
`;

/**
 * Creates the database under a temporary name and links it into place, so a store file that
 * exists is always a complete one (an empty or schema-less store.db is damage, never "new"). Two
 * processes creating at once: the first link wins, the other's copy is dropped.
 */
async function create(dir: string, path: string): Promise<void> {
  const tmp = join(dir, `${DATABASE_FILE}.${randomUUID()}.tmp`);
  const { DatabaseSync } = loadSqlite();
  const legacy = await legacyJournalIn(dir);
  try {
    const db = new DatabaseSync(tmp);
    try {
      db.exec('PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL');
      db.exec('BEGIN');
      db.exec(SCHEMA);
      db.prepare("INSERT INTO meta (key, value) VALUES ('format', ?)").run(FORMAT);
      if (legacy) importLegacy(db, legacy);
      db.exec('COMMIT');
    } finally {
      db.close();
    }
    const won = await link(tmp, path).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        return false;
      },
    );
    await syncDir(dir);
    if (won && legacy) await retireLegacyJournal(dir);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/**
 * The old store's objects keep their resourceVersions (each becomes its row's id); the revision
 * continues after the old one, and history before it is compacted (watching from it is Gone).
 */
function importLegacy(db: DatabaseSync, legacy: LegacyState): void {
  const insert = db.prepare(
    `INSERT INTO log (id, resource, namespace, name, created, deleted, create_revision, prev_revision, value)
     VALUES (?, ?, ?, ?, 1, 0, ?, 0, ?)`,
  );
  for (const { resource, object } of legacy.objects) {
    const id = Number(object.metadata.resourceVersion);
    insert.run(id, resource, object.metadata.namespace ?? '', object.metadata.name, id, encode(object));
  }
  const seq = db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'log'").run(legacy.revision);
  if (seq.changes === 0) {
    db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('log', ?)").run(legacy.revision);
  }
  db.prepare("INSERT INTO meta (key, value) VALUES ('compact_revision', ?)").run(String(legacy.revision));
}

function readFormat(db: DatabaseSync): string | undefined {
  try {
    return (db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: string } | undefined)
      ?.value;
  } catch (error) {
    if (/no such table/.test((error as Error).message)) return undefined;
    throw error;
  }
}

function outcome(prepared: Prepared): Outcome {
  if (!prepared.changed) return { unchanged: prepared.next };
  return { write: prepared.remove ? 'DELETED' : 'MODIFIED', object: prepared.next };
}

function checkVersion(kind: ResourceKind, current: Resource, rv: string | undefined): void {
  if (rv !== undefined && rv !== current.metadata.resourceVersion) {
    throw new ConflictError(describe(kind, refOf(current)));
  }
}

/** The stored form: the object without resourceVersion (that is the row's id). */
function encode(obj: Resource): string {
  const { resourceVersion: _rv, ...metadata } = obj.metadata;
  return JSON.stringify({ ...obj, metadata });
}

function decode(row: Row, path: string): Resource {
  let obj: Resource;
  try {
    obj = JSON.parse(row.value) as Resource;
  } catch (error) {
    throw new StoreDamagedError(path, `log row ${row.id} does not hold a JSON object`, error);
  }
  obj.metadata.resourceVersion = String(row.id);
  return obj;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sqliteCode(error: unknown): number | undefined {
  const errcode = (error as { errcode?: unknown })?.errcode;
  return typeof errcode === 'number' ? errcode & 0xff : undefined;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

let sqlite: typeof import('node:sqlite') | undefined;

/**
 * node:sqlite, loaded on first use. Node 22 marks it experimental and prints a warning on load;
 * that one warning is kept off the CLI's stderr (Node 26 no longer prints it).
 */
function loadSqlite(): typeof import('node:sqlite') {
  if (sqlite) return sqlite;
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (/SQLite is an experimental feature/.test(text)) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    sqlite = createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite');
  } finally {
    process.emitWarning = emit;
  }
  return sqlite;
}
