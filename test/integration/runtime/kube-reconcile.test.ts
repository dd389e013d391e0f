// The reconcile loop on the kube store against a real kube-apiserver: a write from a stale read gets
// the apiserver's 409 and is retried by the loop (not the reconciler) until it lands on top of the
// other writer's change; status written through the status subresource leaves metadata.generation
// alone, so a controller that records observedGeneration settles instead of chasing itself.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { isConflict } from '../../../src/runtime/errors.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import { KubeStore } from '../../../src/stores/kube.ts';
import { conformanceCrds, Widget, type WidgetObject } from '../../conformance/kinds.ts';
import { type CrdLike, type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { waitFor } from '../../env/wait.ts';

let kube: KubeApiserverPeer;
let admin: KubeStore;
let cleanups: (() => Promise<void>)[] = [];

before(async () => {
  kube = await startKubeApiserver();
  await kube.installCRDs(conformanceCrds() as unknown as CrdLike[]);
  admin = new KubeStore({ kubeConfig: kube.kubeConfig(), fieldManager: 'test-writer' });
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});
after(async () => {
  await admin?.close();
  await kube?.stop();
});

async function namespace(): Promise<string> {
  const name = `reconcile-${randomBytes(3).toString('hex')}`;
  await kube
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name } } });
  return name;
}

function widget(ns: string, name: string): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: ns, name },
    spec: { size: 1 },
  };
}

function managerFor(ns: string): { manager: Manager; store: KubeStore; registry: Registry } {
  const store = new KubeStore({ kubeConfig: kube.kubeConfig(), fieldManager: 'test-controller' });
  const registry = new Registry();
  const manager = new Manager({ store, registry, namespace: ns, informer: { resyncMs: 0 } });
  cleanups.push(async () => {
    await manager.stop();
    await store.close();
  });
  return { manager, store, registry };
}

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = (metric?.values ?? []).find((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  );
  return value?.value ?? 0;
}

test('an update from a stale read gets a 409 and the reconcile loop retries it until it succeeds', async () => {
  const ns = await namespace();
  await admin.create(Widget, widget(ns, 'contended'));
  const { manager, store, registry } = managerFor(ns);
  const errors: unknown[] = [];
  let attempts = 0;
  manager.add({
    name: 'labeller',
    for: Widget,
    async reconcile(req) {
      const obj = await store.get<WidgetObject>(Widget, req);
      if (obj.metadata.labels?.reconciled === 'true') return;
      attempts++;
      if (attempts === 1) {
        // Another writer changes the object between our read and our write.
        await admin.update(Widget, { ...obj, spec: { ...obj.spec, color: 'blue' } });
      }
      try {
        await store.update(Widget, {
          ...obj,
          metadata: { ...obj.metadata, labels: { ...obj.metadata.labels, reconciled: 'true' } },
        });
      } catch (error) {
        errors.push(error);
        throw error;
      }
    },
  });
  await manager.start();

  const final = await waitFor(
    async () => {
      const obj = await admin.get<WidgetObject>(Widget, { namespace: ns, name: 'contended' });
      return obj.metadata.labels?.reconciled === 'true' ? obj : undefined;
    },
    { what: 'the label to land', timeoutMs: 20_000 },
  );
  assert.equal(attempts, 2, 'one conflicting attempt, one retry');
  assert.equal(errors.length, 1);
  assert.ok(isConflict(errors[0]), `the first write failed with a Conflict, not ${String(errors[0])}`);
  assert.equal(final.spec?.color, 'blue', "the other writer's change survives");
  assert.equal(
    await metricValue(registry, 'metalbox_reconcile_total', { controller: 'labeller', result: 'conflict' }),
    1,
  );
  assert.ok(
    (await metricValue(registry, 'metalbox_reconcile_total', {
      controller: 'labeller',
      result: 'success',
    })) >= 1,
  );
});

test('status written by the reconcile loop does not bump metadata.generation; a spec change does, once', async () => {
  const ns = await namespace();
  const created = await admin.create(Widget, widget(ns, 'observed'));
  assert.equal(created.metadata.generation, 1);
  const { manager, store } = managerFor(ns);
  let statusWrites = 0;
  manager.add({
    name: 'observer',
    for: Widget,
    async reconcile(req) {
      const obj = manager.informer<WidgetObject>(Widget).get(req);
      if (!obj || obj.status?.observedGeneration === obj.metadata.generation) return;
      await store.patchStatus(
        Widget,
        req,
        { observedGeneration: obj.metadata.generation, phase: `size-${obj.spec?.size}` },
        { resourceVersion: obj.metadata.resourceVersion! },
      );
      // Counted once landed: a patch from a stale cache is a 409 and retried, not a write.
      statusWrites++;
    },
  });
  await manager.start();

  const first = await waitFor(
    async () => {
      const obj = await admin.get<WidgetObject>(Widget, { namespace: ns, name: 'observed' });
      return obj.status?.observedGeneration === 1 ? obj : undefined;
    },
    { what: 'status.observedGeneration 1', timeoutMs: 20_000 },
  );
  assert.equal(first.metadata.generation, 1, 'the status patch left generation at 1');
  assert.notEqual(first.metadata.resourceVersion, created.metadata.resourceVersion);
  assert.deepEqual(first.spec, created.spec);

  await admin.update(Widget, { ...first, spec: { ...first.spec, size: 2 } });
  const second = await waitFor(
    async () => {
      const obj = await admin.get<WidgetObject>(Widget, { namespace: ns, name: 'observed' });
      return obj.status?.observedGeneration === 2 ? obj : undefined;
    },
    { what: 'status.observedGeneration 2', timeoutMs: 20_000 },
  );
  assert.equal(second.metadata.generation, 2, 'the spec change made generation 2; the status patch kept it');
  assert.equal(second.status?.phase, 'size-2');
  // Settled: each status write triggered one more reconcile that found nothing to do.
  await sleep(1000);
  assert.equal(statusWrites, 2);
  const settled = await admin.get<WidgetObject>(Widget, { namespace: ns, name: 'observed' });
  assert.equal(settled.metadata.resourceVersion, second.metadata.resourceVersion);
});
