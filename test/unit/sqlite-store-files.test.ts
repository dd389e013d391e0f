// The embedded SQLite store on disk: several store instances (one per process in real life) on one
// directory, the one-shot import of the old journal format, and damaged files refused by name.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { ConflictError, GoneError, InvalidError } from '../../src/runtime/errors.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import type { WatchEvent } from '../../src/runtime/store.ts';
import { DATABASE_FILE, SqliteStore, StoreDamagedError } from '../../src/stores/sqlite.ts';
import { Widget, type WidgetObject } from '../conformance/kinds.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metalbox-sqlite-'));
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

const ref = (name: string) => ({ namespace: 'default', name });

async function next<T extends Resource>(it: AsyncIterator<WatchEvent<T>>): Promise<WatchEvent<T>> {
  const r = await it.next();
  assert.ok(!r.done, 'the watch ended');
  return r.value;
}

test('two stores on one directory see each other: reads at once, watches through the poll', async () => {
  const a = await SqliteStore.open(dir, { pollIntervalMs: 20 });
  const b = await SqliteStore.open(dir, { pollIntervalMs: 20 });
  try {
    const created = await a.create<WidgetObject>(Widget, widget('shared'));
    assert.equal(
      (await b.get(Widget, ref('shared'))).metadata.resourceVersion,
      created.metadata.resourceVersion,
    );
    const list = await b.list(Widget);
    assert.equal(list.resourceVersion, created.metadata.resourceVersion);

    const ac = new AbortController();
    const events = b.watch<WidgetObject>(Widget, {
      resourceVersion: list.resourceVersion,
      signal: ac.signal,
    });
    const it = events[Symbol.asyncIterator]();
    const updated = await a.update<WidgetObject>(Widget, { ...created, spec: { size: 2 } });
    const seen = await next(it);
    assert.equal(seen.type, 'MODIFIED');
    assert.equal(
      seen.type === 'MODIFIED' && seen.object.metadata.resourceVersion,
      updated.metadata.resourceVersion,
    );
    await a.delete(Widget, ref('shared'));
    const gone = await next(it);
    assert.equal(gone.type, 'DELETED');
    assert.equal(gone.type === 'DELETED' && gone.object.spec?.size, 2, 'a delete carries the last state');
    ac.abort();
  } finally {
    await a.close();
    await b.close();
  }
});

test('compare-and-swap holds across stores: of two updates from one resourceVersion one wins', async () => {
  const a = await SqliteStore.open(dir);
  const b = await SqliteStore.open(dir);
  try {
    const w = await a.create<WidgetObject>(Widget, widget('cas'));
    const results = await Promise.allSettled([
      a.update(Widget, { ...w, spec: { size: 10 } }),
      b.update(Widget, { ...w, spec: { size: 20 } }),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const lost = results.find((r) => r.status === 'rejected');
    assert.ok(lost?.reason instanceof ConflictError);
    // Unconditional status patches from both sides all land (each merges inside the transaction).
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).patchStatus(Widget, ref('cas'), { [`k${i}`]: i })),
    );
    const status = (await a.get<WidgetObject>(Widget, ref('cas'))).status as Record<string, number>;
    assert.equal(Object.keys(status).length, 20);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a compaction by one store makes older revisions Gone for watches in another', async () => {
  const a = await SqliteStore.open(dir);
  const b = await SqliteStore.open(dir, { pollIntervalMs: 20 });
  try {
    const first = await a.create<WidgetObject>(Widget, widget('c0'));
    for (let i = 1; i < 5; i++) await a.create(Widget, widget(`c${i}`));
    await a.delete(Widget, ref('c1'));
    a.compact();
    const it = b.watch(Widget, { resourceVersion: first.metadata.resourceVersion! })[Symbol.asyncIterator]();
    await assert.rejects(it.next(), GoneError);
    // The tombstone and nothing live went: every other object is still there, revision unchanged.
    assert.deepEqual(
      (await b.list(Widget)).items.map((w) => w.metadata.name),
      ['c0', 'c2', 'c3', 'c4'],
    );
    assert.equal(b.revision, 6);
  } finally {
    await a.close();
    await b.close();
  }
});

test('history past historyLimit is compacted by the store itself', async () => {
  const store = await SqliteStore.open(dir, { historyLimit: 4 });
  try {
    for (let i = 0; i < 10; i++) await store.create(Widget, widget(`w-${i}`));
    const it = store.watch(Widget, { resourceVersion: '1' })[Symbol.asyncIterator]();
    await assert.rejects(it.next(), GoneError);
    const recent = store.watch<WidgetObject>(Widget, { resourceVersion: '8' })[Symbol.asyncIterator]();
    const e = await next(recent);
    assert.equal(e.type === 'ADDED' && e.object.metadata.name, 'w-8');
    await recent.return?.();
  } finally {
    await store.close();
  }
});

test('the validator rejects writes with the offending field paths', async () => {
  const store = await SqliteStore.open(dir, {
    validator: (obj) => {
      const size = (obj.spec as { size?: number } | undefined)?.size ?? 0;
      return size > 10 ? [{ path: 'spec.size', message: 'must be at most 10' }] : [];
    },
  });
  try {
    const err = await store.create(Widget, widget('big', 11)).catch((e: unknown) => e);
    assert.ok(err instanceof InvalidError);
    assert.deepEqual(err.fields, [{ path: 'spec.size', message: 'must be at most 10' }]);
    const ok = await store.create<WidgetObject>(Widget, widget('small', 2));
    await assert.rejects(store.update(Widget, { ...ok, spec: { size: 12 } }), InvalidError);
  } finally {
    await store.close();
  }
});

test('watches get bookmarks at the configured interval', async () => {
  const store = await SqliteStore.open(dir, { bookmarkIntervalMs: 20 });
  try {
    await store.create(Widget, widget('a'));
    const it = store.watch(Widget, { resourceVersion: '1' })[Symbol.asyncIterator]();
    assert.deepEqual(await next(it), { type: 'BOOKMARK', resourceVersion: '1' });
    await it.return?.();
  } finally {
    await store.close();
  }
});

test('an old journal directory is imported once, keeping objects and resourceVersions', async () => {
  const obj = (name: string, rv: number, size = 1) => ({
    ...widget(name, size),
    metadata: { namespace: 'default', name, uid: `uid-${name}`, resourceVersion: String(rv), generation: 1 },
  });
  await writeFile(
    join(dir, 'snapshot.json'),
    JSON.stringify({
      format: 1,
      revision: 3,
      resources: { [`${Widget.group}/${Widget.plural}`]: [obj('a', 1), obj('b', 3)] },
    }),
  );
  const line = (revision: number, type: string, o: unknown) =>
    `${JSON.stringify({ revision, type, resource: `${Widget.group}/${Widget.plural}`, object: o })}\n`;
  await writeFile(
    join(dir, 'journal.jsonl'),
    line(2, 'MODIFIED', obj('a', 2)) + // already in the snapshot: skipped
      line(4, 'MODIFIED', obj('a', 4, 7)) +
      line(5, 'ADDED', obj('c', 5)) +
      line(6, 'DELETED', obj('b', 6)) +
      '{"revision":7,"type":"ADD', // torn: never acknowledged
  );
  const store = await SqliteStore.open(dir);
  try {
    const items = (await store.list<WidgetObject>(Widget)).items;
    assert.deepEqual(
      items.map((w) => [w.metadata.name, w.metadata.resourceVersion, w.spec?.size, w.metadata.uid]),
      [
        ['a', '4', 7, 'uid-a'],
        ['c', '5', 1, 'uid-c'],
      ],
    );
    assert.equal(store.revision, 6);
    const created = await store.create(Widget, widget('d'));
    assert.equal(created.metadata.resourceVersion, '7');
    const it = store.watch(Widget, { resourceVersion: '5' })[Symbol.asyncIterator]();
    await assert.rejects(it.next(), GoneError, 'the old history is not imported');
  } finally {
    await store.close();
  }
  assert.ok(existsSync(join(dir, 'snapshot.json.imported')));
  assert.ok(existsSync(join(dir, 'journal.jsonl.imported')));
  assert.ok(!existsSync(join(dir, 'journal.jsonl')));
  const again = await SqliteStore.open(dir);
  assert.equal((await again.list(Widget)).items.length, 3);
  await again.close();
});

test('a damaged line in an old journal refuses the import, naming the line', async () => {
  await writeFile(join(dir, 'journal.jsonl'), 'garbage\n{"revision":9}\n');
  await assert.rejects(SqliteStore.open(dir), /journal\.jsonl line 1 is not valid JSON/);
  assert.ok(!existsSync(join(dir, DATABASE_FILE)), 'no half-imported store is left behind');
});

/** A closed store with some objects, so there is a database file to damage. */
async function filledStore(): Promise<string> {
  const store = await SqliteStore.open(dir);
  for (let i = 0; i < 200; i++) await store.create(Widget, widget(`w-${i}`, i));
  await store.close();
  return join(dir, DATABASE_FILE);
}

test('a damaged database file is refused with its name, never opened as an empty store', async (t) => {
  const path = await filledStore();
  const storeDir = dir; // subtests get a fresh \`dir\` of their own (beforeEach)
  const original = await readFile(path);
  const cases: [string, () => Promise<void>][] = [
    ['emptied', () => truncate(path, 0)],
    ['cut in half', () => truncate(path, Math.floor(original.length / 2))],
    [
      'overwritten header',
      () => writeFile(path, Buffer.concat([Buffer.alloc(100, 0x41), original.subarray(100)])),
    ],
    [
      'a page zeroed',
      async () => {
        const fh = await open(path, 'r+');
        await fh.write(Buffer.alloc(4096), 0, 4096, 4096 * 2);
        await fh.close();
      },
    ],
  ];
  for (const [what, damage] of cases) {
    await t.test(what, async () => {
      await writeFile(path, original);
      await damage();
      const error = await SqliteStore.open(storeDir).catch((e: unknown) => e);
      assert.ok(error instanceof StoreDamagedError, `${what}: ${String(error)}`);
      assert.ok(error.message.startsWith(`${path}: `), error.message);
      assert.match(error.message, /refusing to open it/);
    });
  }
  await writeFile(path, original);
  const intact = await SqliteStore.open(storeDir);
  assert.equal((await intact.list(Widget)).items.length, 200);
  await intact.close();
});

test('a SQLite database of something else is not taken for a store', async () => {
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(join(dir, DATABASE_FILE));
  db.exec('CREATE TABLE other (x)');
  db.close();
  await assert.rejects(SqliteStore.open(dir), /store\.db: not a metalbox store/);
  assert.ok((await stat(join(dir, DATABASE_FILE))).size > 0);
});
