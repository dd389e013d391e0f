import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { ReconcileRequest } from '../../src/runtime/controller.ts';
import { isConflict } from '../../src/runtime/errors.ts';
import type { LeaderElector } from '../../src/runtime/leader.ts';
import { Manager, type ManagerOptions } from '../../src/runtime/manager.ts';
import type { ResourceStore } from '../../src/runtime/store.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { Gadget, Widget, type WidgetObject } from '../conformance/kinds.ts';
import { waitFor } from '../env/wait.ts';

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

function widget(name: string, extra: Partial<WidgetObject['metadata']> = {}): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'default', name, ...extra },
    spec: { size: 1 },
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function manager(options: Partial<ManagerOptions> & { store: ResourceStore }): Manager {
  const m = new Manager({ registry: new Registry(), http: { host: '127.0.0.1', port: 0 }, ...options });
  cleanups.push(() => m.stop());
  return m;
}

async function fetchText(m: Manager, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${m.address!.port}${path}`);
  return { status: res.status, text: await res.text() };
}

/** A test elector driven by hand: grant() and revoke() leadership. */
class ManualElector implements LeaderElector {
  readonly identity = 'manual';
  released = false;
  #started: (() => void) | undefined;
  #stopped: (() => void) | undefined;
  #resolve: (() => void) | undefined;

  run(onStartedLeading: () => void, onStoppedLeading: () => void): Promise<void> {
    this.#started = onStartedLeading;
    this.#stopped = onStoppedLeading;
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  grant(): void {
    this.#started?.();
  }

  revoke(): void {
    this.#stopped?.();
    this.#stopped = undefined;
    this.#resolve?.();
  }

  async release(): Promise<void> {
    this.released = true;
    this.revoke();
  }
}

test('/healthz, /readyz and /metrics answer', async () => {
  const store = new MemoryStore();
  await store.create(Widget, widget('a'));
  const m = manager({ store });
  m.add({ name: 'widgets', for: Widget, reconcile: async () => ({}) });
  await m.start();
  assert.equal((await fetchText(m, '/healthz')).status, 200);
  await waitFor(async () => (await fetchText(m, '/readyz')).status === 200, {
    what: 'ready',
    timeoutMs: 5000,
  });
  assert.equal((await fetchText(m, '/nope')).status, 404);
  await waitFor(async () => (await fetchText(m, '/metrics')).text.includes('result="success"'), {
    what: 'a reconcile in the metrics',
    timeoutMs: 5000,
  });
  const { text } = await fetchText(m, '/metrics');
  assert.match(text, /metalbox_reconcile_total\{controller="widgets",result="success"\} 1/);
  assert.match(text, /metalbox_reconcile_errors_total/);
  assert.match(text, /metalbox_reconcile_duration_seconds_count\{controller="widgets"\} 1/);
  assert.match(text, /metalbox_workqueue_depth\{controller="widgets"\} 0/);
  assert.match(text, /metalbox_leader 1/);
  assert.match(text, /metalbox_informer_relists_total\{kind="Widget",reason="initial"\} 1/);
  await m.stop();
  await assert.rejects(fetch(`http://127.0.0.1:${m.address!.port}/healthz`));
});

test('/readyz is 503 until the caches are synced', async () => {
  const store = new MemoryStore();
  const gate = deferred();
  // The store's list is held back, as a slow apiserver would.
  const slow: ResourceStore = {
    get: (k, r) => store.get(k, r),
    list: async (k, o) => {
      await gate.promise;
      return store.list(k, o);
    },
    watch: (k, o) => store.watch(k, o),
    create: (k, o) => store.create(k, o),
    update: (k, o) => store.update(k, o),
    updateStatus: (k, o) => store.updateStatus(k, o),
    patchStatus: (k, r, p, o) => store.patchStatus(k, r, p, o),
    delete: (k, r, o) => store.delete(k, r, o),
    close: () => store.close(),
  };
  const m = manager({ store: slow });
  m.add({ name: 'widgets', for: Widget, reconcile: async () => ({}) });
  await m.start();
  const early = await fetchText(m, '/readyz');
  assert.equal(early.status, 503);
  assert.match(early.text, /caches not synced: Widget/);
  assert.equal((await fetchText(m, '/healthz')).status, 200);
  gate.resolve();
  await waitFor(async () => (await fetchText(m, '/readyz')).status === 200, {
    what: 'ready',
    timeoutMs: 5000,
  });
});

test('reconciles each object, and again when it changes', async () => {
  const store = new MemoryStore();
  await store.create(Widget, widget('a'));
  const seen: string[] = [];
  const m = manager({ store, http: undefined });
  m.add({
    name: 'widgets',
    for: Widget,
    reconcile: async (req) => {
      seen.push(req.key);
    },
  });
  await m.start();
  await waitFor(async () => seen.includes('default/a'), { what: 'first reconcile', timeoutMs: 5000 });
  await store.create(Widget, widget('b'));
  await waitFor(async () => seen.includes('default/b'), {
    what: 'reconcile of a new object',
    timeoutMs: 5000,
  });
});

test('graceful shutdown waits for the in-flight reconcile before releasing leadership', async () => {
  const store = new MemoryStore();
  await store.create(Widget, widget('slow'));
  const elector = new ManualElector();
  const gate = deferred();
  const order: string[] = [];
  let started = false;
  const m = manager({ store, elector, http: undefined });
  m.add({
    name: 'widgets',
    for: Widget,
    reconcile: async () => {
      started = true;
      await gate.promise;
      order.push(`reconcile finished (released: ${elector.released})`);
    },
  });
  await m.start();
  elector.grant();
  await waitFor(async () => started, { what: 'the reconcile to start', timeoutMs: 5000 });
  let stopped = false;
  const stopping = m.stop().then(() => {
    stopped = true;
  });
  await sleep(50);
  assert.equal(stopped, false, 'stop returned while a reconcile was in flight');
  assert.equal(elector.released, false, 'leadership released while a reconcile was in flight');
  gate.resolve();
  await stopping;
  assert.deepEqual(order, ['reconcile finished (released: false)']);
  assert.equal(elector.released, true);
  assert.deepEqual(await m.done, { reason: 'stopped' });
});

test('a conflict in reconcile is retried quickly until it succeeds', async () => {
  const store = new MemoryStore();
  const original = await store.create<WidgetObject>(Widget, widget('contended'));
  await store.update(Widget, { ...original, metadata: { ...original.metadata, labels: { moved: 'on' } } });
  let attempts = 0;
  let conflicts = 0;
  let done = false;
  const m = manager({ store, http: undefined });
  m.add({
    name: 'widgets',
    for: Widget,
    // Default error backoff is 1 s doubling: three of those would take 7 s. Conflicts retry in ms.
    reconcile: async (req: ReconcileRequest) => {
      attempts++;
      // The first three attempts write from a stale read, as a reconcile racing another writer would.
      const base = attempts <= 3 ? original : await store.get<WidgetObject>(Widget, req);
      try {
        await store.updateStatus(Widget, { ...base, status: { phase: 'Done' } });
      } catch (e) {
        if (isConflict(e)) conflicts++;
        throw e;
      }
      done = true;
    },
  });
  const began = Date.now();
  await m.start();
  await waitFor(async () => done, { what: 'the reconcile to succeed', timeoutMs: 5000, intervalMs: 5 });
  assert.equal(conflicts, 3);
  assert.ok(Date.now() - began < 1000, `conflict retries took ${Date.now() - began} ms`);
  assert.equal(
    (await store.get<WidgetObject>(Widget, { namespace: 'default', name: 'contended' })).status?.phase,
    'Done',
  );
  const metrics = await m.metrics.reconcileTotal.get();
  const conflictCount = metrics.values.find((v) => v.labels.result === 'conflict')?.value;
  assert.equal(conflictCount, 3);
});

test('reconciles only while leading; losing leadership stops reconciling and ends the manager', async () => {
  const store = new MemoryStore();
  await store.create(Widget, widget('a'));
  const elector = new ManualElector();
  const seen: string[] = [];
  const m = manager({ store, elector, http: undefined });
  m.add({
    name: 'widgets',
    for: Widget,
    reconcile: async (req) => {
      seen.push(req.key);
    },
  });
  await m.start();
  await m.informer(Widget).waitForSync();
  await sleep(30);
  assert.deepEqual(seen, [], 'reconciled before leading');
  assert.equal((await m.metrics.leader.get()).values[0]?.value, 0);

  elector.grant();
  await waitFor(async () => seen.length === 1, { what: 'a reconcile once leading', timeoutMs: 5000 });
  assert.equal((await m.metrics.leader.get()).values[0]?.value, 1);

  elector.revoke();
  assert.deepEqual(await m.done, { reason: 'leadership-lost' });
  assert.equal(m.leading, false);
  await store.create(Widget, widget('b'));
  await sleep(30);
  assert.deepEqual(seen, ['default/a'], 'reconciled after losing leadership');
});

test('changes to owned objects and watched kinds enqueue the right owner keys', async () => {
  const store = new MemoryStore();
  const owner = await store.create<WidgetObject>(Widget, widget('owner'));
  const seen: string[] = [];
  const m = manager({ store, http: undefined });
  m.add({
    name: 'widgets',
    for: Widget,
    owns: [Widget],
    watches: [
      { kind: Gadget, map: (g) => [{ namespace: 'default', name: String(g.metadata.labels?.widget) }] },
    ],
    reconcile: async (req) => {
      seen.push(req.key);
    },
  });
  await m.start();
  await waitFor(async () => seen.includes('default/owner'), { what: 'the owner reconcile', timeoutMs: 5000 });
  seen.length = 0;
  await store.create(
    Widget,
    widget('child', {
      ownerReferences: [
        {
          apiVersion: owner.apiVersion,
          kind: 'Widget',
          name: 'owner',
          uid: owner.metadata.uid!,
          controller: true,
        },
      ],
    }),
  );
  await waitFor(async () => seen.includes('default/owner'), {
    what: 'owner enqueued by its child',
    timeoutMs: 5000,
  });
  seen.length = 0;
  await store.create(Gadget, {
    apiVersion: `${Gadget.group}/${Gadget.version}`,
    kind: Gadget.kind,
    metadata: { name: 'g', labels: { widget: 'owner' } },
  });
  await waitFor(async () => seen.includes('default/owner'), {
    what: 'owner enqueued by a watch',
    timeoutMs: 5000,
  });
});
