// The runtime's informer on the kube store against a real kube-apiserver, through the whole loop
// (informer → queue → reconcile): after the apiserver restarts mid-watch, and after its watch
// version was compacted away in etcd (410 Gone → relist), the reconciler's view converges to what
// the apiserver holds — no change is lost, deletions included. The relay cuts one client off the
// apiserver while others keep writing: a network failure no real peer can be told to produce.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, afterEach, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';
import type { RelistReason, RestartReason } from '../../../src/runtime/informer.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import { objectKey, refOf } from '../../../src/runtime/resource.ts';
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
  const name = `informer-${randomBytes(3).toString('hex')}`;
  await kube
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name } } });
  return name;
}

function widget(ns: string, name: string, size: number): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: ns, name },
    spec: { size },
  };
}

/** Sets a widget's size, retrying while the apiserver is away or the object moved on. */
async function resize(ns: string, name: string, size: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const current = await admin.get<WidgetObject>(Widget, { namespace: ns, name });
      await admin.update(Widget, { ...current, spec: { ...current.spec, size } });
      return;
    } catch (error) {
      if (attempt > 300) throw error;
      await sleep(100);
    }
  }
}

/**
 * A manager whose one controller mirrors each Widget's spec.size, read from the informer cache, into
 * `observed` (removing deleted ones): what the reconciler believes the world is.
 */
async function mirror(ns: string, kubeConfig: KubeConfig = kube.kubeConfig()) {
  const store = new KubeStore({ kubeConfig, fieldManager: 'test-mirror' });
  const observed = new Map<string, number>();
  const manager = new Manager({
    store,
    registry: new Registry(),
    namespace: ns,
    informer: { backoff: { baseMs: 200, capMs: 2000, jitter: 0.2 }, resyncMs: 0 },
  });
  manager.add({
    name: 'widget-mirror',
    for: Widget,
    workers: 4,
    async reconcile(req) {
      const obj = manager.informer<WidgetObject>(Widget).get(req);
      if (obj) observed.set(req.key, obj.spec?.size ?? -1);
      else observed.delete(req.key);
    },
  });
  const relists: RelistReason[] = [];
  const restarts: RestartReason[] = [];
  manager.informer(Widget).on('relist', ({ reason }) => relists.push(reason));
  manager.informer(Widget).on('restart', ({ reason }) => restarts.push(reason));
  await manager.start();
  cleanups.push(async () => {
    await manager.stop();
    await store.close();
  });
  return { manager, observed, relists, restarts };
}

/** Waits until `observed` equals what the apiserver holds now. */
async function converged(ns: string, observed: Map<string, number>, timeoutMs = 60_000): Promise<void> {
  let want = new Map<string, number>();
  await waitFor(
    async () => {
      const list = await admin.list<WidgetObject>(Widget, { namespace: ns });
      want = new Map(list.items.map((w) => [objectKey(refOf(w)), w.spec?.size ?? -1]));
      if (want.size !== observed.size) return false;
      for (const [k, v] of want) if (observed.get(k) !== v) return false;
      return true;
    },
    {
      what: 'the reconciled state to converge to the apiserver',
      timeoutMs,
      intervalMs: 250,
      context: () =>
        `want ${JSON.stringify([...want].sort())}\nobserved ${JSON.stringify([...observed].sort())}`,
    },
  );
}

test('watches again after the apiserver restarts mid-watch; every change around the restart is reconciled', async () => {
  const ns = await namespace();
  for (let i = 0; i < 20; i++) await admin.create(Widget, widget(ns, `w-${i}`, 0));
  const { observed, restarts } = await mirror(ns);
  await converged(ns, observed);

  // A writer keeps changing sizes while the apiserver goes down and comes back.
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      await resize(ns, `w-${writes % 10}`, writes + 1);
      writes++;
    }
  })();
  await sleep(500);
  const restartsBefore = restarts.length;
  await kube.restart();
  // Changes right after the apiserver is back, likely before the informer has reconnected.
  for (let i = 0; i < 5; i++)
    await admin.delete(Widget, { namespace: ns, name: `w-${15 + i}` }).catch(() => {});
  for (let i = 0; i < 5; i++) await admin.create(Widget, widget(ns, `new-${i}`, 100 + i));
  await sleep(1000);
  writing = false;
  await writer;

  assert.ok(restarts.length > restartsBefore, 'the informer noticed the broken watch and watched again');
  assert.ok(writes > 10, `the writer kept writing around the restart (${writes} writes)`);
  await converged(ns, observed);
  assert.equal(observed.size, 20, '15 old + 5 new widgets');
  assert.ok(!observed.has(`${ns}/w-15`), 'a deletion right after the restart reached the reconciler');
});

test('relists after 410 Gone (its version compacted away in etcd); the reconciled state converges, deletions included', async () => {
  const ns = await namespace();
  for (let i = 0; i < 20; i++) await admin.create(Widget, widget(ns, `w-${i}`, 0));

  // The mirror reaches the apiserver through a relay the test can cut.
  const target = new URL(kube.url);
  const sockets = new Set<Socket>();
  let cut = false;
  const relay: Server = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => relay.close(r));
  });
  const port = (relay.address() as { port: number }).port;
  const viaRelay = new KubeConfig();
  viaRelay.loadFromString(kube.kubeConfig().exportConfig().replace(kube.url, `https://127.0.0.1:${port}`));

  const { observed, relists } = await mirror(ns, viaRelay);
  await converged(ns, observed);
  assert.deepEqual(relists, ['initial']);

  cut = true;
  for (const s of sockets) s.destroy();
  // While the mirror is cut off: updates, deletions and creations, then history is compacted.
  for (let i = 0; i < 10; i++) await resize(ns, `w-${i}`, 50 + i);
  for (let i = 15; i < 20; i++) await admin.delete(Widget, { namespace: ns, name: `w-${i}` });
  for (let i = 0; i < 5; i++) await admin.create(Widget, widget(ns, `new-${i}`, 200 + i));
  const etcd = new Etcd3({ hosts: kube.etcd.endpoint });
  try {
    const { header } = await etcd.get('metalbox-compaction-probe').exec();
    await etcd.kv.compact({ revision: header.revision, physical: true });
  } finally {
    etcd.close();
  }
  cut = false;

  await waitFor(async () => relists.includes('gone'), {
    what: 'a relist because the watch version is gone',
    timeoutMs: 30_000,
    context: () => `relists: ${relists.join(', ')}`,
  });
  await converged(ns, observed);
  assert.equal(observed.get(`${ns}/w-3`), 53);
  assert.equal(observed.get(`${ns}/new-4`), 204);
  for (let i = 15; i < 20; i++) assert.ok(!observed.has(`${ns}/w-${i}`), `w-${i} was deleted while cut off`);
});
