/**
 * One-shot import of the embedded store's former on-disk format (metalbox before the SQLite
 * store): `snapshot.json` (every object at one revision) plus `journal.jsonl` (one JSON line per
 * change after it). Read-only: the SQLite store writes the result into its new database, then the
 * old files are renamed `*.imported` so a second open does not import them again.
 */
import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { objectKey, type Resource, refOf } from '../runtime/resource.ts';

const SNAPSHOT = 'snapshot.json';
const JOURNAL = 'journal.jsonl';
const LOCK = 'LOCK';

export interface LegacyState {
  /** The old store's last revision: the new store continues after it. */
  revision: number;
  /** Every live object with its resource key (`group/plural`), oldest resourceVersion first. */
  objects: { resource: string; object: Resource }[];
}

interface Change {
  revision: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: string;
  object: Resource;
}

/** The old store's state in `dir`, or undefined when there is none. Throws naming the damaged file. */
export async function legacyJournalIn(dir: string): Promise<LegacyState | undefined> {
  const snapshotText = await readOptional(join(dir, SNAPSHOT));
  const journalText = await readOptional(join(dir, JOURNAL));
  if (snapshotText === undefined && journalText === undefined) return undefined;
  await refuseIfLocked(dir);
  const objects = new Map<string, { resource: string; object: Resource }>();
  let revision = 0;
  if (snapshotText !== undefined) {
    const path = join(dir, SNAPSHOT);
    let data: { format?: number; revision: number; resources: Record<string, Resource[]> };
    try {
      data = JSON.parse(snapshotText);
    } catch (error) {
      throw new Error(`${path} is not valid JSON; cannot import the old store`, { cause: error });
    }
    if (data.format !== 1) throw new Error(`${path}: unknown snapshot format ${String(data.format)}`);
    revision = data.revision;
    for (const [resource, items] of Object.entries(data.resources)) {
      for (const object of items)
        objects.set(`${resource}|${objectKey(refOf(object))}`, { resource, object });
    }
  }
  if (journalText !== undefined) {
    const path = join(dir, JOURNAL);
    // A torn last line was never acknowledged (the old store cut it off on open too).
    const lines = journalText.slice(0, journalText.lastIndexOf('\n') + 1).split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i]) continue;
      let change: Change;
      try {
        change = JSON.parse(lines[i]!) as Change;
      } catch (error) {
        throw new Error(`${path} line ${i + 1} is not valid JSON; cannot import the old store`, {
          cause: error,
        });
      }
      if (change.revision <= revision) continue; // already in the snapshot
      revision = change.revision;
      const key = `${change.resource}|${objectKey(refOf(change.object))}`;
      if (change.type === 'DELETED') objects.delete(key);
      else objects.set(key, { resource: change.resource, object: change.object });
    }
  }
  const sorted = [...objects.values()].sort(
    (a, b) => Number(a.object.metadata.resourceVersion) - Number(b.object.metadata.resourceVersion),
  );
  return { revision, objects: sorted };
}

/** Renames the imported files so they are kept but never imported twice; drops the old LOCK. */
export async function retireLegacyJournal(dir: string): Promise<void> {
  for (const file of [SNAPSHOT, JOURNAL]) {
    await rename(join(dir, file), join(dir, `${file}.imported`)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
  await rm(join(dir, LOCK), { force: true });
}

/** An older metalbox still writing the old files would lose everything it writes after the import. */
async function refuseIfLocked(dir: string): Promise<void> {
  const pid = Number.parseInt((await readOptional(join(dir, LOCK))) ?? '', 10);
  if (!Number.isInteger(pid) || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return;
  }
  throw new Error(`${dir} is in use by an older metalbox (process ${pid}); stop it before upgrading`);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
