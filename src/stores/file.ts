/**
 * The embedded store (demo, dev, single node): MemoryStore semantics, made durable by a journal on
 * disk and restored on open with the same objects and revision. One process per directory.
 */
import { mkdir } from 'node:fs/promises';
import { type DirLock, lockDir } from './dir-lock.ts';
import { Journal, loadState } from './journal.ts';
import { type InitialState, MemoryStore, type MemoryStoreOptions } from './memory.ts';
import type { Mutation } from './watch-hub.ts';

export interface FileStoreOptions extends MemoryStoreOptions {
  /** fsync each batch of writes (default true). */
  fsync?: boolean;
  /** Fold the journal into a snapshot after this many entries (default 10,000). */
  snapshotEvery?: number;
  /** ...and at least this often while the journal is not empty (default 5 min; 0: never). */
  snapshotIntervalMs?: number;
}

export class FileStore extends MemoryStore {
  #journal: Journal | undefined;
  #lock: DirLock | undefined;
  readonly dir: string;

  /** Use FileStore.open. */
  private constructor(dir: string, options: FileStoreOptions, initial: InitialState) {
    super(options, initial);
    this.dir = dir;
  }

  /** Opens (creating if needed) the store in `dir`, replaying snapshot and journal. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    await mkdir(dir, { recursive: true });
    const lock = await lockDir(dir);
    try {
      const loaded = await loadState(dir);
      const limit = options.historyLimit ?? 10_000;
      const history = loaded.mutations.slice(-limit);
      const dropped = loaded.mutations.length - history.length;
      const compactedRevision =
        dropped > 0 ? loaded.mutations[dropped - 1]!.revision : loaded.snapshotRevision;
      const store = new FileStore(dir, options, {
        revision: loaded.revision,
        resources: loaded.resources,
        history,
        compactedRevision,
      });
      store.#lock = lock;
      store.#journal = await Journal.open(
        dir,
        {
          fsync: options.fsync ?? true,
          snapshotEvery: options.snapshotEvery ?? 10_000,
          snapshotIntervalMs: options.snapshotIntervalMs ?? 300_000,
        },
        () => store.exportState(),
        loaded.mutations.length,
      );
      return store;
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  /** Folds the journal into a snapshot now (it also happens on its own; see the options). */
  compactJournal(): Promise<void> {
    return this.#journal!.snapshot();
  }

  /** Journal entries since the last snapshot. */
  get journalEntries(): number {
    return this.#journal!.entries;
  }

  protected override checkWritable(): void {
    const failure = this.#journal?.failure;
    if (failure) throw failure;
  }

  protected override persist(m: Mutation): Promise<void> {
    return this.#journal!.append(m);
  }

  override async close(): Promise<void> {
    await super.close();
    await this.#journal?.close();
    await this.#lock?.release();
    this.#journal = undefined;
    this.#lock = undefined;
  }
}
