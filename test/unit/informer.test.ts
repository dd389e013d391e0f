import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Channel } from '../../src/runtime/channel.ts';
import { Informer, type InformerEvents } from '../../src/runtime/informer.ts';
import type { Resource, ResourceKind } from '../../src/runtime/resource.ts';
import type { ResourceStore, WatchEvent, WatchOptions } from '../../src/runtime/store.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { Widget, type WidgetObject } from '../conformance/kinds.ts';
import { waitFor } from '../env/wait.ts';

/**
 * A real MemoryStore whose watches the test can break, like a network would: `mode` decides what
 * the next watch call gets, and breakWatches() fails the live ones. Everything else goes straight
 * to the store.
 */
class InterruptibleStore {
  readonly inner: MemoryStore;
  mode: 'pass' | 'fail' | 'silent' = 'pass';
  watchCalls = 0;
  #live = new Set<Channel<WatchEvent<Resource>>>();

  constructor(bookmarkIntervalMs = 60_000) {
    this.inner = new MemoryStore({ bookmarkIntervalMs });
  }

  breakWatches(): void {
    for (const c of this.#live) c.fail(new Error('connection reset by peer'));
  }

  get store(): ResourceStore {
    const inner = this.inner;
    return {
      get: (k, r) => inner.get(k, r),
      list: (k, o) => inner.list(k, o),
      create: (k, o) => inner.create(k, o),
      update: (k, o) => inner.update(k, o),
      updateStatus: (k, o) => inner.updateStatus(k, o),
      patchStatus: (k, r, p, o) => inner.patchStatus(k, r, p, o),
      delete: (k, r, o) => inner.delete(k, r, o),
      close: () => inner.close(),
      watch: <T extends Resource>(kind: ResourceKind, options: WatchOptions) => {
        this.watchCalls++;
        if (this.mode === 'pass') return this.#pipe(inner.watch<T>(kind, options), options.signal);
        const channel = new Channel<WatchEvent<T>>(); // deliberately ignores options.signal
        if (this.mode === 'fail') channel.fail(new Error('connection reset by peer'));
        return channel;
      },
    };
  }

  #pipe<T extends Resource>(
    source: AsyncIterable<WatchEvent<T>>,
    signal?: AbortSignal,
  ): AsyncIterable<WatchEvent<T>> {
    const out = new Channel<WatchEvent<T>>(signal);
    const live = out as unknown as Channel<WatchEvent<Resource>>;
    this.#live.add(live);
    const iterator = source[Symbol.asyncIterator]();
    out.onClose(() => {
      this.#live.delete(live);
      void iterator.return?.();
    });
    void (async () => {
      try {
        for (let r = await iterator.next(); !r.done; r = await iterator.next()) out.push(r.value);
        out.end();
      } catch (e) {
        out.fail(e);
      }
    })();
    return out;
  }
}

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

function widget(name: string, size = 1): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'default', name },
    spec: { size },
  };
}

function record<T extends Resource>(informer: Informer<T>) {
  const log: string[] = [];
  const relists: InformerEvents<T>['relist'][0][] = [];
  const restarts: InformerEvents<T>['restart'][0][] = [];
  informer.on('add', (o) => log.push(`add ${o.metadata.name}`));
  informer.on('update', (o) => log.push(`update ${o.metadata.name}`));
  informer.on('delete', (o) => log.push(`delete ${o.metadata.name}`));
  informer.on('relist', (i) => relists.push(i));
  informer.on('restart', (i) => restarts.push(i));
  return { log, relists, restarts };
}

function start<T extends Resource>(informer: Informer<T>): Informer<T> {
  informer.start();
  cleanups.push(() => informer.stop());
  return informer;
}

test('lists into the cache, then follows add, update and delete', async () => {
  const s = new InterruptibleStore();
  await s.inner.create(Widget, widget('a'));
  const informer = start(new Informer<WidgetObject>(s.store, Widget, { resyncMs: 0 }));
  const { log, relists } = record(informer);
  await informer.waitForSync();
  assert.deepEqual(
    relists.map((r) => r.reason),
    ['initial'],
  );
  assert.equal(informer.get({ namespace: 'default', name: 'a' })?.spec?.size, 1);

  const b = await s.inner.create<WidgetObject>(Widget, widget('b'));
  await s.inner.update(Widget, { ...b, spec: { size: 5 } });
  await s.inner.delete(Widget, { namespace: 'default', name: 'a' });
  await waitFor(async () => log.length >= 4, { what: 'watch events', timeoutMs: 5000 });
  assert.deepEqual(log, ['add a', 'add b', 'update b', 'delete a']);
  assert.deepEqual(
    informer.list().map((w) => [w.metadata.name, w.spec?.size]),
    [['b', 5]],
  );
});

test('relists after Gone, announcing what changed while it was not watching', async () => {
  const s = new InterruptibleStore();
  await s.inner.create(Widget, widget('stays'));
  await s.inner.create(Widget, widget('goes'));
  const informer = start(
    new Informer<WidgetObject>(s.store, Widget, { resyncMs: 0, backoff: { baseMs: 20, capMs: 20 } }),
  );
  const { log, relists, restarts } = record(informer);
  await informer.waitForSync();
  await waitFor(async () => s.watchCalls === 1, { what: 'the first watch', timeoutMs: 5000 });

  s.mode = 'fail'; // the next watch attempts fail while the world moves on and history is compacted
  await s.inner.create(Widget, widget('trigger')); // the live watch sees this one...
  await waitFor(async () => log.includes('add trigger'), { what: 'the live watch', timeoutMs: 5000 });
  // ...then its stream breaks, and the informer keeps retrying from the last version it saw.
  s.breakWatches();
  await waitFor(async () => restarts.some((r) => r.reason === 'error'), {
    what: 'a failed watch',
    timeoutMs: 5000,
  });
  await s.inner.create(Widget, widget('new'));
  await s.inner.delete(Widget, { namespace: 'default', name: 'goes' });
  s.inner.compact();
  s.mode = 'pass';

  await waitFor(async () => relists.some((r) => r.reason === 'gone'), {
    what: 'a relist after Gone',
    timeoutMs: 5000,
  });
  assert.deepEqual(informer.keys().sort(), ['default/new', 'default/stays', 'default/trigger']);
  assert.ok(log.includes('add new'));
  assert.ok(log.includes('delete goes'));
});

test('restarts a watch that goes silent, even one that ignores its abort signal', async () => {
  const s = new InterruptibleStore();
  s.mode = 'silent';
  const informer = start(
    new Informer<WidgetObject>(s.store, Widget, {
      resyncMs: 0,
      stallTimeoutMs: 50,
      backoff: { baseMs: 10, capMs: 10 },
    }),
  );
  const { log, restarts, relists } = record(informer);
  await informer.waitForSync();
  await waitFor(async () => restarts.some((r) => r.reason === 'stall'), {
    what: 'a stall restart',
    timeoutMs: 5000,
  });
  s.mode = 'pass';
  await waitFor(async () => s.watchCalls >= 3, { what: 'a new watch', timeoutMs: 5000 });
  await s.inner.create(Widget, widget('after-stall'));
  await waitFor(async () => log.includes('add after-stall'), {
    what: 'the recovered watch',
    timeoutMs: 5000,
  });
  assert.deepEqual(
    relists.map((r) => r.reason),
    ['initial'],
    'a stall resumes from the last version, no relist',
  );
});

test('a quiet watch that gets bookmarks is not restarted as stalled', async () => {
  const s = new InterruptibleStore(15);
  const informer = start(new Informer<WidgetObject>(s.store, Widget, { resyncMs: 0, stallTimeoutMs: 80 }));
  const { restarts } = record(informer);
  await informer.waitForSync();
  await sleep(300);
  assert.deepEqual(restarts, []);
});

test('after a watch error it watches again from the last version, without relisting', async () => {
  const s = new InterruptibleStore();
  const informer = start(
    new Informer<WidgetObject>(s.store, Widget, { resyncMs: 0, backoff: { baseMs: 10, capMs: 10 } }),
  );
  const { log, restarts, relists } = record(informer);
  await informer.waitForSync();
  await s.inner.create(Widget, widget('before'));
  await waitFor(async () => log.includes('add before'), { what: 'the first event', timeoutMs: 5000 });
  s.breakWatches();
  await waitFor(async () => restarts.length > 0, { what: 'a restart', timeoutMs: 5000 });
  assert.equal(restarts[0]!.reason, 'error');
  assert.match(String(restarts[0]!.error), /connection reset/);
  await s.inner.create(Widget, widget('after'));
  await waitFor(async () => log.includes('add after'), { what: 'the resumed watch', timeoutMs: 5000 });
  assert.deepEqual(
    relists.map((r) => r.reason),
    ['initial'],
  );
  assert.deepEqual(log, ['add before', 'add after']);
});

test('resync re-announces every cached object periodically', async () => {
  const s = new InterruptibleStore();
  await s.inner.create(Widget, widget('a'));
  await s.inner.create(Widget, widget('b'));
  const informer = start(new Informer<WidgetObject>(s.store, Widget, { resyncMs: 25 }));
  const resynced: string[] = [];
  informer.on('resync', (o) => resynced.push(o.metadata.name));
  await informer.waitForSync();
  await waitFor(async () => resynced.length >= 4, { what: 'two resyncs', timeoutMs: 5000 });
  assert.deepEqual(resynced.slice(0, 4).sort(), ['a', 'a', 'b', 'b']);
});

test('the cache hands out copies', async () => {
  const s = new InterruptibleStore();
  await s.inner.create(Widget, widget('a'));
  const informer = start(new Informer<WidgetObject>(s.store, Widget, { resyncMs: 0 }));
  await informer.waitForSync();
  const copy = informer.get({ namespace: 'default', name: 'a' })!;
  copy.spec = { size: 99 };
  assert.equal(informer.get({ namespace: 'default', name: 'a' })?.spec?.size, 1);
});

test('stopped right after its first sync (before the watch began), it stops at once', async () => {
  const store = new MemoryStore();
  const informer = new Informer<WidgetObject>(store as unknown as ResourceStore, Widget, {
    namespace: 'lab',
  });
  informer.start();
  await informer.waitForSync();
  assert.equal(informer.running, true);
  const stopped = await Promise.race([informer.stop().then(() => 'stopped'), sleep(2000).then(() => 'hung')]);
  assert.equal(stopped, 'stopped');
  assert.equal(informer.running, false);
  await store.close();
});
