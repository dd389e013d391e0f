/**
 * The ResourceStore contract as tests. Every store runs it:
 *
 *   storeConformanceSuite('file store', async () => ({ store, namespace, otherNamespace, cleanup, ... }));
 *
 * Each test gets a fresh harness. Names are unique per test, so harnesses may share a backend
 * (one kube-apiserver, two fresh namespaces per harness). Optional hooks enable more tests.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import {
  AlreadyExistsError,
  ConflictError,
  GoneError,
  InvalidError,
  isNotFound,
  NotFoundError,
} from '../../src/runtime/errors.ts';
import { addFinalizer, removeFinalizer } from '../../src/runtime/finalizers.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import type { ResourceStore, WatchEvent } from '../../src/runtime/store.ts';
import { Gadget, Widget, type WidgetObject } from './kinds.ts';

export interface StoreHarness {
  store: ResourceStore;
  /** Two namespaces the test may write to (for a kube store: fresh ones). */
  namespace: string;
  otherNamespace: string;
  /** Makes every revision up to now unavailable to watches. Enables the Gone test. */
  compact?: () => Promise<void>;
  /** Closes the store and opens it again on the same data. Enables the restart test. */
  reopen?: () => Promise<ResourceStore>;
  /** Closes whatever store is current and removes the data. */
  cleanup: () => Promise<void>;
}

export type MakeStore = () => Promise<StoreHarness>;

const FINALIZER = 'conformance.metalbox.dev/cleanup';
const WATCH_TIMEOUT_MS = 10_000;

export function storeConformanceSuite(name: string, makeStore: MakeStore): void {
  const withStore = (fn: (h: StoreHarness, t: TestContext) => Promise<void>) => async (t: TestContext) => {
    const h = await makeStore();
    try {
      await fn(h, t);
    } finally {
      await h.cleanup();
    }
  };

  describe(`${name}: ResourceStore conformance`, () => {
    test(
      'create assigns uid, resourceVersion, generation 1 and creationTimestamp, and drops status',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, {
          ...widget(namespace, 'create'),
          status: { phase: 'ignored' },
        });
        assert.ok(created.metadata.uid);
        assert.equal(typeof created.metadata.resourceVersion, 'string');
        assert.equal(created.metadata.generation, 1);
        assert.match(created.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        assert.equal(created.status, undefined);
        const got = await store.get<WidgetObject>(Widget, ref(created));
        assert.deepEqual(got.spec, { size: 1, color: 'red' });
        assert.equal(got.metadata.uid, created.metadata.uid);
        assert.equal(got.metadata.resourceVersion, created.metadata.resourceVersion);
      }),
    );

    test(
      'creating an existing name is AlreadyExists',
      withStore(async ({ store, namespace }) => {
        const w = widget(namespace, 'dup');
        await store.create(Widget, w);
        await assert.rejects(store.create(Widget, w), AlreadyExistsError);
      }),
    );

    test(
      'getting a missing object is NotFound',
      withStore(async ({ store, namespace }) => {
        await assert.rejects(store.get(Widget, { namespace, name: unique('missing') }), NotFoundError);
      }),
    );

    test(
      'writing a missing object is NotFound',
      withStore(async ({ store, namespace }) => {
        const ghost = {
          ...widget(namespace, 'ghost'),
          metadata: { namespace, name: unique('ghost'), resourceVersion: '1' },
        };
        await assert.rejects(store.update(Widget, ghost), NotFoundError);
        await assert.rejects(store.updateStatus(Widget, { ...ghost, status: { phase: 'X' } }), NotFoundError);
        await assert.rejects(store.patchStatus(Widget, ref(ghost), { phase: 'X' }), NotFoundError);
      }),
    );

    test(
      'a watch sees only its own kind',
      withStore(async ({ store, namespace }) => {
        const { resourceVersion } = await store.list(Widget, { namespace });
        const ac = new AbortController();
        const reader = collect(
          store.watch<WidgetObject>(Widget, { namespace, resourceVersion, signal: ac.signal }),
          1,
        );
        await store.create<Resource>(Gadget, {
          apiVersion: `${Gadget.group}/${Gadget.version}`,
          kind: Gadget.kind,
          metadata: { name: unique('other-kind') },
        });
        const created = await store.create(Widget, widget(namespace, 'own-kind'));
        const [first] = await reader;
        ac.abort();
        assert.equal(first!.object.kind, 'Widget');
        assert.equal(first!.object.metadata.name, created.metadata.name);
      }),
    );

    test(
      'an invalid name is Invalid and names metadata.name',
      withStore(async ({ store, namespace }) => {
        const err = await store
          .create(Widget, { ...widget(namespace, 'x'), metadata: { namespace, name: 'Not_Valid' } })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        assert.ok(err instanceof InvalidError, `expected InvalidError, got ${String(err)}`);
        assert.ok(err.fields.some((f) => f.path === 'metadata.name'));
      }),
    );

    test(
      'list filters by namespace and labels and returns a resourceVersion',
      withStore(async ({ store, namespace, otherNamespace }) => {
        const team = unique('team');
        await store.create(Widget, widget(namespace, 'a', { team }));
        await store.create(Widget, widget(namespace, 'b', { team: 'other' }));
        await store.create(Widget, widget(otherNamespace, 'c', { team }));
        const inNs = await store.list<WidgetObject>(Widget, { namespace });
        assert.equal(inNs.items.length, 2);
        assert.ok(inNs.items.every((w) => w.metadata.namespace === namespace));
        assert.equal(typeof inNs.resourceVersion, 'string');
        assert.notEqual(inNs.resourceVersion, '');
        const labelled = await store.list<WidgetObject>(Widget, { labelSelector: { team } });
        assert.deepEqual(
          labelled.items.map((w) => w.metadata.namespace).sort(),
          [namespace, otherNamespace].sort(),
        );
      }),
    );

    test(
      'cluster-scoped objects are stored without a namespace',
      withStore(async ({ store }) => {
        const name = unique('gadget');
        const created = await store.create<Resource>(Gadget, {
          apiVersion: `${Gadget.group}/${Gadget.version}`,
          kind: Gadget.kind,
          metadata: { name },
          spec: { x: 1 },
        });
        assert.equal(created.metadata.namespace, undefined);
        const got = await store.get(Gadget, { name });
        assert.deepEqual(got.spec, { x: 1 });
        await store.delete(Gadget, { name });
        await assert.rejects(store.get(Gadget, { name }), NotFoundError);
      }),
    );

    test(
      'a stale resourceVersion is a Conflict and a missing one is Invalid',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'stale'));
        const first = structuredClone(created);
        first.spec = { size: 2 };
        await store.update(Widget, first);
        const second = structuredClone(created);
        second.spec = { size: 3 };
        await assert.rejects(store.update(Widget, second), ConflictError);
        const noVersion = structuredClone(created);
        delete noVersion.metadata.resourceVersion;
        await assert.rejects(store.update(Widget, noVersion), InvalidError);
        assert.deepEqual((await store.get<WidgetObject>(Widget, ref(created))).spec, { size: 2 });
      }),
    );

    test(
      'generation grows only when spec changes',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'gen'));
        const labelled = await store.update<WidgetObject>(Widget, {
          ...created,
          metadata: { ...created.metadata, labels: { touched: 'yes' } },
        });
        assert.equal(labelled.metadata.generation, 1);
        assert.notEqual(labelled.metadata.resourceVersion, created.metadata.resourceVersion);
        const resized = await store.update<WidgetObject>(Widget, {
          ...labelled,
          spec: { size: 9, color: 'red' },
        });
        assert.equal(resized.metadata.generation, 2);
      }),
    );

    test(
      'an update that changes nothing keeps the resourceVersion',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'noop'));
        const same = await store.update<WidgetObject>(Widget, structuredClone(created));
        assert.equal(same.metadata.resourceVersion, created.metadata.resourceVersion);
        assert.equal(same.metadata.generation, 1);
      }),
    );

    test(
      'update ignores status and keeps system metadata',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'ignore-status'));
        const withStatus = await store.updateStatus<WidgetObject>(Widget, {
          ...created,
          status: { phase: 'Ready' },
        });
        const updated = await store.update<WidgetObject>(Widget, {
          ...withStatus,
          metadata: { ...withStatus.metadata, uid: 'forged', generation: 42 },
          spec: { size: 5 },
          status: { phase: 'Forged' },
        });
        assert.deepEqual(updated.status, { phase: 'Ready' });
        assert.equal(updated.metadata.uid, created.metadata.uid);
        assert.equal(updated.metadata.generation, 2);
        assert.equal(updated.metadata.creationTimestamp, created.metadata.creationTimestamp);
      }),
    );

    test(
      'updateStatus changes neither spec nor generation, and checks the resourceVersion',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'status'));
        const updated = await store.updateStatus<WidgetObject>(Widget, {
          ...created,
          metadata: { ...created.metadata, labels: { sneaky: 'label' } },
          spec: { size: 100 },
          status: { phase: 'Ready', observedGeneration: 1 },
        });
        assert.deepEqual(updated.status, { phase: 'Ready', observedGeneration: 1 });
        assert.deepEqual(updated.spec, { size: 1, color: 'red' });
        assert.equal(updated.metadata.generation, 1);
        assert.equal(updated.metadata.labels, undefined);
        assert.notEqual(updated.metadata.resourceVersion, created.metadata.resourceVersion);
        await assert.rejects(
          store.updateStatus(Widget, { ...created, status: { phase: 'Stale' } }),
          ConflictError,
        );
      }),
    );

    test(
      'patchStatus merges into status and leaves spec and generation alone',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'patch'));
        await store.updateStatus(Widget, { ...created, status: { phase: 'A', detail: { a: 1, b: 2 } } });
        const patched = await store.patchStatus<WidgetObject>(Widget, ref(created), {
          detail: { b: null, a: 3 },
          observedGeneration: 1,
        });
        assert.deepEqual(patched.status, { phase: 'A', detail: { a: 3 }, observedGeneration: 1 });
        assert.deepEqual(patched.spec, { size: 1, color: 'red' });
        assert.equal(patched.metadata.generation, 1);
        await assert.rejects(
          store.patchStatus(
            Widget,
            ref(created),
            { phase: 'B' },
            { resourceVersion: created.metadata.resourceVersion },
          ),
          ConflictError,
        );
      }),
    );

    test(
      'delete without finalizers removes the object',
      withStore(async ({ store, namespace }) => {
        const created = await store.create(Widget, widget(namespace, 'del'));
        await store.delete(Widget, ref(created));
        await assert.rejects(store.get(Widget, ref(created)), NotFoundError);
        await assert.rejects(store.delete(Widget, ref(created)), NotFoundError);
      }),
    );

    test(
      'a delete precondition on a different uid is a Conflict',
      withStore(async ({ store, namespace }) => {
        const created = await store.create(Widget, widget(namespace, 'precondition'));
        await assert.rejects(
          store.delete(Widget, ref(created), {
            preconditions: { uid: '00000000-0000-0000-0000-000000000000' },
          }),
          ConflictError,
        );
        await store.get(Widget, ref(created));
      }),
    );

    test(
      'delete with finalizers sets deletionTimestamp; removing the last finalizer removes the object',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'fin'));
        const guarded = await addFinalizer<WidgetObject>(store, Widget, ref(created), FINALIZER);
        assert.deepEqual(guarded.metadata.finalizers, [FINALIZER]);
        await store.delete(Widget, ref(created));
        const terminating = await store.get<WidgetObject>(Widget, ref(created));
        assert.ok(terminating.metadata.deletionTimestamp, 'deletionTimestamp is set');
        assert.equal(terminating.metadata.generation, 2, 'marking for deletion bumps generation');
        await store.delete(Widget, ref(created));
        const again = await store.get<WidgetObject>(Widget, ref(created));
        assert.equal(again.metadata.deletionTimestamp, terminating.metadata.deletionTimestamp);
        await assert.rejects(
          store.update(Widget, {
            ...again,
            metadata: { ...again.metadata, finalizers: [FINALIZER, 'conformance.metalbox.dev/late'] },
          }),
          InvalidError,
        );
        await removeFinalizer(store, Widget, ref(created), FINALIZER);
        await assert.rejects(store.get(Widget, ref(created)), NotFoundError);
      }),
    );

    test(
      'finalizer helpers retry through conflicts from concurrent writers',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'fin-race'));
        const names = ['a', 'b', 'c', 'd'].map((s) => `conformance.metalbox.dev/${s}`);
        await Promise.all(names.map((f) => addFinalizer(store, Widget, ref(created), f, { attempts: 20 })));
        const got = await store.get<WidgetObject>(Widget, ref(created));
        assert.deepEqual([...(got.metadata.finalizers ?? [])].sort(), names);
        await Promise.all(
          names.map((f) => removeFinalizer(store, Widget, ref(created), f, { attempts: 20 })),
        );
        assert.equal((await store.get<WidgetObject>(Widget, ref(created))).metadata.finalizers, undefined);
      }),
    );

    test(
      'watch from a list resourceVersion delivers later changes in order, filtered by namespace',
      withStore(async ({ store, namespace, otherNamespace }) => {
        const { resourceVersion } = await store.list(Widget, { namespace });
        const ac = new AbortController();
        const events = store.watch<WidgetObject>(Widget, { namespace, resourceVersion, signal: ac.signal });
        const reader = collect(events, 3);
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'watched'));
        await store.create(Widget, widget(otherNamespace, 'elsewhere'));
        await store.update(Widget, { ...created, spec: { size: 2 } });
        await store.delete(Widget, ref(created));
        const seen = await reader;
        ac.abort();
        assert.deepEqual(
          seen.map((e) => [e.type, e.object.metadata.name]),
          [
            ['ADDED', created.metadata.name],
            ['MODIFIED', created.metadata.name],
            ['DELETED', created.metadata.name],
          ],
        );
        assert.deepEqual(seen[1]!.object.spec, { size: 2 });
      }),
    );

    test(
      'watch from an older resourceVersion replays what happened since',
      withStore(async ({ store, namespace }) => {
        const { resourceVersion } = await store.list(Widget, { namespace });
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'replay'));
        await store.updateStatus(Widget, { ...created, status: { phase: 'Ready' } });
        const ac = new AbortController();
        const seen = await collect(
          store.watch<WidgetObject>(Widget, { namespace, resourceVersion, signal: ac.signal }),
          2,
        );
        ac.abort();
        assert.deepEqual(
          seen.map((e) => e.type),
          ['ADDED', 'MODIFIED'],
        );
        assert.deepEqual(seen[1]!.object.status, { phase: 'Ready' });
        assert.equal(seen[1]!.object.metadata.resourceVersion !== created.metadata.resourceVersion, true);
      }),
    );

    test(
      'removing the last finalizer of a terminating object is seen as DELETED',
      withStore(async ({ store, namespace }) => {
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'fin-watch'));
        await addFinalizer(store, Widget, ref(created), FINALIZER);
        const { resourceVersion } = await store.list(Widget, { namespace });
        const ac = new AbortController();
        const reader = collect(
          store.watch<WidgetObject>(Widget, { namespace, resourceVersion, signal: ac.signal }),
          2,
        );
        await store.delete(Widget, ref(created));
        await removeFinalizer(store, Widget, ref(created), FINALIZER);
        const seen = await reader;
        ac.abort();
        assert.deepEqual(
          seen.map((e) => e.type),
          ['MODIFIED', 'DELETED'],
        );
        assert.ok(seen[0]!.object.metadata.deletionTimestamp);
      }),
    );

    test(
      'aborting a watch ends its stream',
      withStore(async ({ store, namespace }) => {
        const { resourceVersion } = await store.list(Widget, { namespace });
        const ac = new AbortController();
        const iterator = store
          .watch(Widget, { namespace, resourceVersion, signal: ac.signal })
          [Symbol.asyncIterator]();
        const next = iterator.next();
        ac.abort();
        const result = await withTimeout(next, 'the aborted watch to end');
        assert.equal(result.done, true);
      }),
    );

    test(
      'watching from a compacted resourceVersion is Gone',
      withStore(async (h, t) => {
        if (!h.compact) return t.skip('the harness cannot compact');
        const { store, namespace } = h;
        const { resourceVersion } = await store.list(Widget, { namespace });
        const created = await store.create<WidgetObject>(Widget, widget(namespace, 'gone'));
        await store.update(Widget, { ...created, spec: { size: 7 } });
        await h.compact();
        const err = await collect(store.watch(Widget, { namespace, resourceVersion }), 1).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof GoneError, `expected GoneError, got ${String(err)}`);
        // A fresh list gives a version to continue from.
        const fresh = await store.list(Widget, { namespace });
        const ac = new AbortController();
        const reader = collect(
          store.watch<WidgetObject>(Widget, {
            namespace,
            resourceVersion: fresh.resourceVersion,
            signal: ac.signal,
          }),
          1,
        );
        await store.delete(Widget, ref(created));
        assert.equal((await reader)[0]!.type, 'DELETED');
        ac.abort();
      }),
    );

    test(
      'objects and resourceVersions survive a restart',
      withStore(async (h, t) => {
        if (!h.reopen) return t.skip('the harness cannot restart the store');
        const { namespace } = h;
        const created = await h.store.create<WidgetObject>(Widget, widget(namespace, 'durable'));
        const updated = await h.store.updateStatus<WidgetObject>(Widget, {
          ...created,
          status: { phase: 'Ready' },
        });
        const doomed = await h.store.create<WidgetObject>(Widget, widget(namespace, 'doomed'));
        await h.store.delete(Widget, ref(doomed));
        const before = await h.store.list<WidgetObject>(Widget, { namespace });
        const store = await h.reopen();
        const after = await store.list<WidgetObject>(Widget, { namespace });
        assert.deepEqual(after.items, before.items);
        assert.equal(after.resourceVersion, before.resourceVersion);
        const got = await store.get<WidgetObject>(Widget, ref(created));
        assert.equal(got.metadata.resourceVersion, updated.metadata.resourceVersion);
        assert.deepEqual(got.status, { phase: 'Ready' });
        await assert.rejects(store.get(Widget, ref(doomed)), (e: unknown) => isNotFound(e));
        // Writing continues after the restored revision: no resourceVersion is reused.
        const later = await store.update<WidgetObject>(Widget, { ...got, spec: { size: 3 } });
        assert.ok(
          ![created, updated, doomed].some(
            (o) => o.metadata.resourceVersion === later.metadata.resourceVersion,
          ),
        );
        await assert.rejects(store.update(Widget, { ...got, spec: { size: 4 } }), ConflictError);
      }),
    );
  });
}

function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

function widget(namespace: string, prefix: string, labels?: Record<string, string>): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace, name: unique(prefix), ...(labels ? { labels } : {}) },
    spec: { size: 1, color: 'red' },
  };
}

function ref(obj: Resource): { namespace?: string; name: string } {
  return { namespace: obj.metadata.namespace, name: obj.metadata.name };
}

/** The first `n` non-bookmark events; rejects with the stream's error or on timeout. */
async function collect<T extends Resource>(
  events: AsyncIterable<WatchEvent<T>>,
  n: number,
): Promise<Extract<WatchEvent<T>, { object: T }>[]> {
  const out: Extract<WatchEvent<T>, { object: T }>[] = [];
  const run = async () => {
    for await (const e of events) {
      if (e.type === 'BOOKMARK') continue;
      out.push(e);
      if (out.length >= n) break;
    }
    return out;
  };
  return withTimeout(run(), `${n} watch events (got ${out.length})`);
}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WATCH_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
