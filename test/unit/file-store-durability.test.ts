import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { GoneError, InvalidError } from '../../src/runtime/errors.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { DirLockedError } from '../../src/stores/dir-lock.ts';
import { FileStore } from '../../src/stores/file.ts';
import { Widget, type WidgetObject } from '../conformance/kinds.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metalbox-file-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function widget(name: string, size = 1): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'default', name },
    spec: { size },
  };
}

test('journal compaction into a snapshot keeps objects and revision and empties the journal', async () => {
  const store = await FileStore.open(dir, { snapshotIntervalMs: 0 });
  for (let i = 0; i < 5; i++) await store.create(Widget, widget(`w-${i}`, i));
  await store.delete(Widget, { namespace: 'default', name: 'w-0' });
  assert.equal(store.journalEntries, 6);
  await store.compactJournal();
  assert.equal(store.journalEntries, 0);
  assert.equal(await readFile(join(dir, 'journal.jsonl'), 'utf8'), '');
  await store.create(Widget, widget('after-snapshot'));
  const before = await store.list(Widget);
  await store.close();

  const reopened = await FileStore.open(dir);
  const after = await reopened.list(Widget);
  assert.deepEqual(after, before);
  assert.equal(after.items.length, 5);
  assert.equal(reopened.revision, 7);
  await reopened.close();
});

test('the journal is folded into a snapshot after snapshotEvery entries', async () => {
  const store = await FileStore.open(dir, { snapshotEvery: 10, snapshotIntervalMs: 0 });
  await Promise.all(Array.from({ length: 25 }, (_, i) => store.create(Widget, widget(`w-${i}`))));
  await store.create(Widget, widget('last'));
  assert.ok(store.journalEntries < 10, `journal has ${store.journalEntries} entries`);
  const snapshot = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { revision: number };
  assert.ok(snapshot.revision >= 10);
  await store.close();
  const reopened = await FileStore.open(dir);
  assert.equal((await reopened.list(Widget)).items.length, 26);
  await reopened.close();
});

test('every acknowledged write survives a SIGKILL of the writing process', async () => {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/file-store-writer.ts'), dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('acked ')) acked.push(line.slice(6));
      if (acked.length >= 60) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', () => resolve());
    child.on('error', reject);
  });
  await new Promise((r) => child.once('exit', r).once('close', r));
  assert.ok(acked.length >= 60, `the writer acknowledged only ${acked.length} writes`);

  // The dead writer's LOCK is taken over.
  const store = await FileStore.open(dir);
  const names = new Set((await store.list(Widget)).items.map((w) => w.metadata.name));
  const lost = acked.filter((n) => !names.has(n));
  assert.deepEqual(lost, []);
  await store.close();
});

test('a torn last journal line is dropped on open', async () => {
  const store = await FileStore.open(dir, { snapshotIntervalMs: 0 });
  await store.create(Widget, widget('kept'));
  await store.close();
  await appendFile(join(dir, 'journal.jsonl'), '{"revision":2,"type":"ADD');
  const reopened = await FileStore.open(dir);
  assert.deepEqual(
    (await reopened.list(Widget)).items.map((w) => w.metadata.name),
    ['kept'],
  );
  const next = await reopened.create(Widget, widget('next'));
  assert.equal(next.metadata.resourceVersion, '2');
  await reopened.close();
  const again = await FileStore.open(dir);
  assert.equal((await again.list(Widget)).items.length, 2);
  await again.close();
});

test('a damaged line in the middle of the journal refuses to open, naming the line', async () => {
  const store = await FileStore.open(dir);
  await store.create(Widget, widget('a'));
  await store.close();
  await appendFile(join(dir, 'journal.jsonl'), 'garbage\n{"revision":9}\n');
  await assert.rejects(FileStore.open(dir), /journal\.jsonl line 2 is not valid JSON/);
});

test('a second open of the same directory is refused while the first is open', async () => {
  const store = await FileStore.open(dir);
  await assert.rejects(FileStore.open(dir), DirLockedError);
  await store.close();
  const again = await FileStore.open(dir);
  await again.close();
});

test('the validator rejects writes with the offending field paths', async () => {
  const store = await FileStore.open(dir, {
    validator: (obj) => {
      const size = (obj.spec as { size?: number } | undefined)?.size ?? 0;
      return size > 10 ? [{ path: 'spec.size', message: 'must be at most 10' }] : [];
    },
  });
  const err = await store.create(Widget, widget('big', 11)).catch((e: unknown) => e);
  assert.ok(err instanceof InvalidError);
  assert.deepEqual(err.fields, [{ path: 'spec.size', message: 'must be at most 10' }]);
  const ok = await store.create<WidgetObject>(Widget, widget('small', 2));
  await assert.rejects(store.update(Widget, { ...ok, spec: { size: 12 } }), InvalidError);
  await store.close();
});

test('watches get bookmarks at the configured interval', async () => {
  const store = await FileStore.open(dir, { bookmarkIntervalMs: 20 });
  await store.create(Widget, widget('a'));
  const ac = new AbortController();
  let bookmark: string | undefined;
  for await (const e of store.watch(Widget, { resourceVersion: '1', signal: ac.signal })) {
    if (e.type === 'BOOKMARK') {
      bookmark = e.resourceVersion;
      break;
    }
  }
  assert.equal(bookmark, '1');
  await store.close();
});

test('history beyond historyLimit is Gone; after a restart the journal is history again', async () => {
  const store = await FileStore.open(dir, { historyLimit: 4, snapshotIntervalMs: 0 });
  for (let i = 0; i < 10; i++) await store.create(Widget, widget(`w-${i}`));
  const err = await firstEvent(store.watch(Widget, { resourceVersion: '1' })).catch((e: unknown) => e);
  assert.ok(err instanceof GoneError);
  await store.close();

  const reopened = await FileStore.open(dir, { historyLimit: 100 });
  const replayed = await firstEvent(reopened.watch(Widget, { resourceVersion: '1' }));
  assert.equal(replayed.type === 'ADDED' && replayed.object.metadata.name, 'w-1');
  await reopened.compactJournal();
  await reopened.close();
  const compacted = await FileStore.open(dir);
  const gone = await firstEvent(compacted.watch(Widget, { resourceVersion: '1' })).catch((e: unknown) => e);
  assert.ok(gone instanceof GoneError, 'history folded into the snapshot is Gone after a restart');
  await compacted.close();
});

async function firstEvent(events: AsyncIterable<import('../../src/runtime/store.ts').WatchEvent<Resource>>) {
  for await (const e of events) return e;
  throw new Error('the watch ended without an event');
}
