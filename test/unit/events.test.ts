import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CoreEvent, EventKind, StoreEventRecorder } from '../../src/runtime/events.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { Gadget, Widget, type WidgetObject } from '../conformance/kinds.ts';

async function setup() {
  const store = new MemoryStore();
  const host = await store.create<WidgetObject>(Widget, {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'lab', name: 'node-1' },
    spec: {},
  });
  let now = new Date('2026-01-01T00:00:00Z');
  const recorder = new StoreEventRecorder({
    store,
    component: 'metalbox-controller',
    instance: 'replica-a',
    now: () => now,
  });
  return { store, host, recorder, tick: (ms: number) => (now = new Date(now.getTime() + ms)) };
}

test('an event is written as a core/v1 Event about the object', async () => {
  const { store, host, recorder } = await setup();
  recorder.event(host, 'Normal', 'PoweredOn', 'power on requested');
  await recorder.flush();
  const { items } = await store.list<CoreEvent>(EventKind, { namespace: 'lab' });
  assert.equal(items.length, 1);
  const e = items[0]!;
  assert.deepEqual(e.involvedObject, {
    apiVersion: host.apiVersion,
    kind: 'Widget',
    name: 'node-1',
    namespace: 'lab',
    uid: host.metadata.uid,
    resourceVersion: host.metadata.resourceVersion,
  });
  assert.equal(e.type, 'Normal');
  assert.equal(e.reason, 'PoweredOn');
  assert.equal(e.message, 'power on requested');
  assert.equal(e.count, 1);
  assert.equal(e.firstTimestamp, '2026-01-01T00:00:00Z');
  assert.deepEqual(e.source, { component: 'metalbox-controller', host: 'replica-a' });
  assert.match(e.metadata.name, /^node-1\./);
});

test('repeats of the same event bump count and lastTimestamp of one Event', async () => {
  const { store, host, recorder, tick } = await setup();
  recorder.event(host, 'Warning', 'BmcUnreachable', 'no answer from 10.0.0.9');
  tick(60_000);
  recorder.event(host, 'Warning', 'BmcUnreachable', 'no answer from 10.0.0.9');
  tick(60_000);
  recorder.event(host, 'Warning', 'BmcUnreachable', 'no answer from 10.0.0.9');
  recorder.event(host, 'Warning', 'BmcUnreachable', 'different message');
  await recorder.flush();
  const { items } = await store.list<CoreEvent>(EventKind, { namespace: 'lab' });
  const repeated = items.find((e) => e.message === 'no answer from 10.0.0.9')!;
  assert.equal(items.length, 2);
  assert.equal(repeated.count, 3);
  assert.equal(repeated.firstTimestamp, '2026-01-01T00:00:00Z');
  assert.equal(repeated.lastTimestamp, '2026-01-01T00:02:00Z');
});

test('a repeat after the Event was removed starts a new one', async () => {
  const { store, host, recorder } = await setup();
  recorder.event(host, 'Normal', 'Provisioned', 'done');
  await recorder.flush();
  const [first] = (await store.list<CoreEvent>(EventKind)).items;
  await store.delete(EventKind, { namespace: 'lab', name: first!.metadata.name });
  recorder.event(host, 'Normal', 'Provisioned', 'done');
  await recorder.flush();
  const { items } = await store.list<CoreEvent>(EventKind);
  assert.equal(items.length, 1);
  assert.equal(items[0]!.count, 1);
  assert.notEqual(items[0]!.metadata.name, first!.metadata.name);
});

test('events about cluster-scoped objects go to the default namespace', async () => {
  const { store, recorder } = await setup();
  const gadget = await store.create(Gadget, {
    apiVersion: `${Gadget.group}/${Gadget.version}`,
    kind: Gadget.kind,
    metadata: { name: 'g' },
  });
  recorder.event(gadget, 'Normal', 'Synced', 'ok');
  await recorder.flush();
  const { items } = await store.list<CoreEvent>(EventKind, { namespace: 'default' });
  assert.equal(items.length, 1);
  assert.equal(items[0]!.involvedObject.namespace, undefined);
});

test('a failing store does not throw into the caller; the failure is logged', async () => {
  const { store, host } = await setup();
  const warnings: string[] = [];
  const recorder = new StoreEventRecorder({
    store,
    component: 'metalbox-controller',
    logger: { ...silentLogger, warn: (_obj, msg) => warnings.push(String(msg)) },
  });
  await store.close();
  recorder.event(host, 'Normal', 'X', 'y');
  await recorder.flush();
  assert.deepEqual(warnings, ['could not record event']);
});

test("one object's events are written in the order recorded, with microsecond eventTimes", async () => {
  const { store, host } = await setup();
  // Delays the first create so that, written concurrently, the second event would land first.
  let creates = 0;
  const slowFirstCreate = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'create') return Reflect.get(target, prop, receiver);
      return async (...args: Parameters<MemoryStore['create']>) => {
        if (creates++ === 0) await new Promise((r) => setTimeout(r, 50));
        return target.create(...args);
      };
    },
  });
  let ms = Date.parse('2026-01-01T00:00:00.250Z');
  const recorder = new StoreEventRecorder({
    store: slowFirstCreate,
    component: 'metalbox-controller',
    now: () => new Date(ms++),
  });
  recorder.event(host, 'Normal', 'StateChanged', 'new → registering');
  recorder.event(host, 'Normal', 'StateChanged', 'registering → inspecting');
  await recorder.flush();
  const { items } = await store.list<CoreEvent>(EventKind, { namespace: 'lab' });
  const byWrite = items.sort(
    (a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion),
  );
  assert.deepEqual(
    byWrite.map((e) => e.message),
    ['new → registering', 'registering → inspecting'],
  );
  assert.deepEqual(
    byWrite.map((e) => e.eventTime),
    ['2026-01-01T00:00:00.250000Z', '2026-01-01T00:00:00.251000Z'],
  );
});

test('forgetting an object drops its aggregation series: the same event starts a new Event', async () => {
  const { store, host, recorder } = await setup();
  recorder.event(host, 'Normal', 'PoweredOn', 'power on requested');
  recorder.event(host, 'Normal', 'PoweredOn', 'power on requested');
  recorder.forget(host);
  await recorder.flush();
  recorder.event(host, 'Normal', 'PoweredOn', 'power on requested');
  await recorder.flush();
  const { items } = await store.list<CoreEvent>(EventKind, { namespace: 'lab' });
  assert.deepEqual(items.map((e) => e.count).sort(), [1, 2], 'the series before forget, then a new one');
});
