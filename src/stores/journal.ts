/**
 * The file store's disk format: `snapshot.json` (every object at one revision) plus `journal.jsonl`
 * (one JSON line per mutation after it). Appends are group-committed: everything written in one
 * event-loop turn shares one write and one fsync. Snapshots fold the journal away.
 */
import { type FileHandle, open, readFile, rename, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { objectKey, type Resource, refOf } from '../runtime/resource.ts';
import type { Mutation } from './watch-hub.ts';

const SNAPSHOT = 'snapshot.json';
const JOURNAL = 'journal.jsonl';
const FORMAT = 1;

export interface SnapshotData {
  revision: number;
  /** resourceKey → objects. */
  resources: Record<string, Resource[]>;
}

export interface LoadedState {
  /** Revision of the snapshot: history before it is gone. */
  snapshotRevision: number;
  revision: number;
  resources: Map<string, Resource[]>;
  /** Journal entries after the snapshot, oldest first. */
  mutations: Mutation[];
}

/** Reads snapshot + journal. A torn last line (crash mid-write, never acknowledged) is cut off. */
export async function loadState(dir: string): Promise<LoadedState> {
  const snapshot = await readSnapshot(join(dir, SNAPSHOT));
  const objects = new Map<string, Map<string, Resource>>();
  for (const [resource, items] of Object.entries(snapshot.resources)) {
    objects.set(resource, new Map(items.map((o) => [keyOf(o), o])));
  }
  const mutations = await readJournal(join(dir, JOURNAL), snapshot.revision);
  let revision = snapshot.revision;
  for (const m of mutations) {
    let bucket = objects.get(m.resource);
    if (!bucket) {
      bucket = new Map();
      objects.set(m.resource, bucket);
    }
    if (m.type === 'DELETED') bucket.delete(keyOf(m.object));
    else bucket.set(keyOf(m.object), m.object);
    revision = m.revision;
  }
  const resources = new Map([...objects].map(([k, v]) => [k, [...v.values()]]));
  return { snapshotRevision: snapshot.revision, revision, resources, mutations };
}

export interface JournalOptions {
  /** fsync every batch (default true). Off only for throwaway data. */
  fsync: boolean;
  /** Write a snapshot after this many journal entries. */
  snapshotEvery: number;
  /** Also write one this often when the journal is not empty (0: never). */
  snapshotIntervalMs: number;
}

interface Pending {
  line: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class Journal {
  #dir: string;
  #fh: FileHandle;
  #options: JournalOptions;
  #takeSnapshot: () => SnapshotData;
  #pending: Pending[] = [];
  #snapshotWaiters: Pending[] = [];
  #entries: number;
  #nextSnapshotAt: number;
  #loop: Promise<void> | undefined;
  #failure: Error | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;

  /** `entries`: journal lines already on disk after the snapshot. */
  private constructor(
    dir: string,
    fh: FileHandle,
    options: JournalOptions,
    takeSnapshot: () => SnapshotData,
    entries: number,
  ) {
    this.#dir = dir;
    this.#fh = fh;
    this.#options = options;
    this.#takeSnapshot = takeSnapshot;
    this.#entries = entries;
    this.#nextSnapshotAt = options.snapshotEvery;
    if (options.snapshotIntervalMs > 0) {
      this.#timer = setInterval(() => {
        if (this.#entries > 0) this.snapshot().catch(() => {});
      }, options.snapshotIntervalMs);
      this.#timer.unref();
    }
  }

  static async open(
    dir: string,
    options: JournalOptions,
    takeSnapshot: () => SnapshotData,
    entries: number,
  ): Promise<Journal> {
    const fh = await open(join(dir, JOURNAL), 'a');
    return new Journal(dir, fh, options, takeSnapshot, entries);
  }

  /** Resolves once the line is on disk (fsynced). After a write failure every append rejects. */
  append(m: Mutation): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error(`journal in ${this.#dir} is closed`));
    const line = `${JSON.stringify(m)}\n`;
    return new Promise((resolve, reject) => {
      this.#pending.push({ line, resolve, reject });
      this.#kick();
    });
  }

  /** Folds the journal into a fresh snapshot now. */
  snapshot(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#snapshotWaiters.push({ line: '', resolve, reject });
      this.#kick();
    });
  }

  /** Set once a journal write failed: nothing written after it can be made durable. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Journal lines since the last snapshot. */
  get entries(): number {
    return this.#entries;
  }

  /** Writes what is pending and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    while (this.#loop) await this.#loop;
    await this.#fh.close();
  }

  #kick(): void {
    if (this.#loop) return;
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      if (this.#pending.length > 0 || this.#snapshotWaiters.length > 0) this.#kick();
    });
  }

  async #run(): Promise<void> {
    await nextTurn(); // let this turn's other writes join the batch
    while (!this.#failure && (this.#pending.length > 0 || this.#snapshotWaiters.length > 0)) {
      const batch = this.#pending.splice(0);
      if (batch.length > 0) {
        try {
          await this.#fh.write(batch.map((p) => p.line).join(''));
          if (this.#options.fsync) await this.#fh.datasync();
        } catch (e) {
          this.#failure = new Error(
            `journal write in ${this.#dir} failed; the store is read-only until restarted`,
            {
              cause: e,
            },
          );
          for (const p of [...batch, ...this.#pending.splice(0), ...this.#snapshotWaiters.splice(0)]) {
            p.reject(this.#failure);
          }
          return;
        }
        this.#entries += batch.length;
        for (const p of batch) p.resolve();
      }
      const waiters = this.#snapshotWaiters.splice(0);
      if (waiters.length > 0 || this.#entries >= this.#nextSnapshotAt) {
        try {
          await this.#writeSnapshot();
          this.#nextSnapshotAt = this.#options.snapshotEvery;
          for (const w of waiters) w.resolve();
        } catch (e) {
          // Not fatal: the journal still holds everything. Try again after another full batch.
          this.#nextSnapshotAt = this.#entries + this.#options.snapshotEvery;
          for (const w of waiters) w.reject(e);
        }
      }
    }
  }

  async #writeSnapshot(): Promise<void> {
    // Taken synchronously: it may include mutations still pending here. Those lines land in the
    // fresh journal and are skipped on replay because their revision is not above the snapshot's.
    const data = JSON.stringify({ format: FORMAT, ...this.#takeSnapshot() });
    const tmp = join(this.#dir, `${SNAPSHOT}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      if (this.#options.fsync) await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.#dir, SNAPSHOT));
    if (this.#options.fsync) await syncDir(this.#dir);
    await this.#fh.truncate(0);
    if (this.#options.fsync) await this.#fh.datasync();
    this.#entries = 0;
  }
}

async function readSnapshot(path: string): Promise<SnapshotData> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { revision: 0, resources: {} };
    throw e;
  }
  const data = JSON.parse(text) as SnapshotData & { format?: number };
  if (data.format !== FORMAT) throw new Error(`${path}: unknown snapshot format ${String(data.format)}`);
  return { revision: data.revision, resources: data.resources };
}

async function readJournal(path: string, after: number): Promise<Mutation[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length) await truncate(path, Buffer.byteLength(text.slice(0, end)));
  const out: Mutation[] = [];
  let last = after;
  const lines = text.slice(0, end).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line) continue;
    let m: Mutation;
    try {
      m = JSON.parse(line) as Mutation;
    } catch (e) {
      throw new Error(`${path} line ${i + 1} is not valid JSON; the journal is damaged`, { cause: e });
    }
    if (m.revision <= after) continue; // already in the snapshot
    if (m.revision <= last) throw new Error(`${path} line ${i + 1}: revision ${m.revision} is out of order`);
    last = m.revision;
    out.push(m);
  }
  return out;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function keyOf(o: Resource): string {
  return objectKey(refOf(o));
}
