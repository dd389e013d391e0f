import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { talosMachineConfigController } from '../../src/controllers/talosmachineconfig.ts';
import type { BareMetalHost } from '../../src/crds/baremetalhost.ts';
import type { TalosMachineConfig } from '../../src/crds/talosmachineconfig.ts';
import type { EventRecorder } from '../../src/runtime/events.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import {
  CONFIG_KEY,
  HASH_ANNOTATION,
  HOST_KIND,
  SECRET_KIND,
  type SecretObject,
  secretText,
  TALOS_CONFIG_KIND,
} from '../../src/talos/kinds.ts';
import { TalosMetrics } from '../../src/talos/metrics.ts';
import { configHash } from '../../src/talos/render.ts';
import { GOLDEN_EVENT_SINK } from '../fixtures/talos/seed.ts';
import { baseSecret, NAMESPACE, seedStore } from '../fixtures/talos/store.ts';

type Host = BareMetalHost & Resource;
type Tmc = TalosMachineConfig & Resource;

function setup() {
  const store = new MemoryStore();
  const registry = new Registry();
  const metrics = new TalosMetrics(registry);
  const recorded: { reason: string; message: string }[] = [];
  const events: EventRecorder = { event: (_o, _t, reason, message) => recorded.push({ reason, message }) };
  const spec = talosMachineConfigController({ store, events, metrics, eventSinkEndpoint: GOLDEN_EVENT_SINK });
  const reconcile = () =>
    spec.reconcile(
      { key: `${NAMESPACE}/mycluster`, namespace: NAMESPACE, name: 'mycluster' },
      { signal: new AbortController().signal, logger: silentLogger },
    );
  const renders = async () =>
    (await metrics.renders.get()).values.find((v) => v.labels.result === 'ok')?.value ?? 0;
  const secret = (host: string) =>
    store.get<SecretObject>(SECRET_KIND, { namespace: NAMESPACE, name: `${host}-talos-config` });
  const host = (name: string) => store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name });
  const tmc = () => store.get<Tmc>(TALOS_CONFIG_KIND, { namespace: NAMESPACE, name: 'mycluster' });
  return { store, spec, reconcile, renders, secret, host, tmc, recorded };
}

test('each referring host gets a Secret owned by it with its config; status carries only the hash', async () => {
  const t = setup();
  const hosts = await seedStore(t.store);
  await t.reconcile();
  for (const h of hosts) {
    const secret = await t.secret(h.metadata.name);
    const config = secretText(secret, CONFIG_KEY)!;
    assert.match(config, new RegExp(`hostname: talos-${h.metadata.name}`));
    assert.deepEqual(
      secret.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
      [['BareMetalHost', h.metadata.name, h.metadata.uid, true]],
    );
    const stored = await t.host(h.metadata.name);
    assert.deepEqual(stored.status?.talos, { configHash: configHash(config) });
    assert.equal(secret.metadata.annotations?.[HASH_ANNOTATION], configHash(config));
  }
  const tmc = await t.tmc();
  const rendered = tmc.status?.conditions?.find((c) => c.type === 'Rendered');
  assert.equal(rendered?.status, 'True');
  assert.equal(rendered?.message, '5 hosts rendered');
  assert.deepEqual(
    tmc.status?.hosts?.map((h) => h.secretName),
    hosts.map((h) => `${h.metadata.name}-talos-config`).sort(),
  );
});

test("a change to one host's IP re-renders and rewrites only that host", async () => {
  const t = setup();
  await seedStore(t.store);
  await t.reconcile();
  assert.equal(await t.renders(), 5);
  const before = new Map<string, string | undefined>();
  for (const name of ['cp-01', 'cp-02', 'cp-03', 'worker-01', 'worker-02']) {
    before.set(name, (await t.secret(name)).metadata.resourceVersion);
  }
  const cp01 = await t.host('cp-01');
  await t.store.update(HOST_KIND, {
    ...cp01,
    spec: { ...cp01.spec, network: { ...cp01.spec.network!, addresses: ['10.0.20.50/24'] } },
  });
  await t.reconcile();
  assert.equal(await t.renders(), 6, 'one more render');
  for (const [name, version] of before) {
    const now = (await t.secret(name)).metadata.resourceVersion;
    if (name === 'cp-01') assert.notEqual(now, version, 'cp-01 rewritten');
    else assert.equal(now, version, `${name} untouched`);
  }
  assert.match(secretText(await t.secret('cp-01'), CONFIG_KEY)!, /10\.0\.20\.50\/24/);
  await t.reconcile();
  assert.equal(await t.renders(), 6, 'nothing changed: nothing rendered');
});

test('a missing base Secret is Rendered=False naming the field, and creating it renders every host', async () => {
  const t = setup();
  await seedStore(t.store, 'v1.12', { baseSecret: false });
  await t.reconcile();
  const failed = (await t.tmc()).status?.conditions?.find((c) => c.type === 'Rendered');
  assert.equal(failed?.status, 'False');
  assert.equal(failed?.reason, 'RenderFailed');
  assert.match(
    failed!.message,
    /cp-01, cp-02, cp-03, worker-01, worker-02: spec.baseConfigSecretRef: Secret metalbox-system\/mycluster-base-config does not exist$/,
  );
  assert.deepEqual(
    t.recorded.map((e) => e.reason),
    ['RenderFailed'],
  );
  await t.store.create(SECRET_KIND, baseSecret('v1.12'));
  await t.reconcile();
  assert.equal((await t.tmc()).status?.conditions?.find((c) => c.type === 'Rendered')?.status, 'True');
});

test('a host patch that breaks one host fails only that host, names the field and stops its config being served', async () => {
  const t = setup();
  await seedStore(t.store);
  await t.reconcile();
  assert.ok((await t.host('worker-02')).status?.talos?.configHash);
  const tmc = await t.tmc();
  await t.store.update(TALOS_CONFIG_KIND, {
    ...tmc,
    spec: {
      ...tmc.spec,
      hostPatches: [
        {
          host: 'worker-02',
          patches: [{ inline: 'apiVersion: v1alpha1\nkind: LinkConfig\nname: bond0\nmtu: 9000\n' }],
        },
      ],
    },
  });
  await t.reconcile();
  const rendered = (await t.tmc()).status?.conditions?.find((c) => c.type === 'Rendered');
  assert.equal(rendered?.status, 'False');
  assert.match(
    rendered!.message,
    /^worker-02: spec.hostPatches\[0\].patches\[0\].inline: link name bond0 clash/,
  );
  assert.equal((await t.host('worker-02')).status?.talos?.configHash, undefined);
  assert.ok((await t.host('worker-01')).status?.talos?.configHash, 'the others keep theirs');
});

test('a host that stops referring to the TalosMachineConfig loses its rendered Secret', async () => {
  const t = setup();
  await seedStore(t.store);
  await t.reconcile();
  const w = await t.host('worker-01');
  const { talosConfigRef: _, ...spec } = w.spec;
  await t.store.update(HOST_KIND, { ...w, spec });
  await t.reconcile();
  await assert.rejects(t.secret('worker-01'), /not found/);
  assert.equal((await t.tmc()).status?.hosts?.length, 4);
});

test('a deleted rendered Secret is written again, and host and Secret changes map to the TalosMachineConfig', async () => {
  const t = setup();
  await seedStore(t.store);
  await t.reconcile();
  const secret = await t.secret('cp-02');
  await t.store.delete(SECRET_KIND, { namespace: NAMESPACE, name: 'cp-02-talos-config' });
  const [hostWatch, secretWatch] = t.spec.watches!;
  assert.deepEqual(secretWatch!.map(secret), [{ namespace: NAMESPACE, name: 'mycluster' }]);
  assert.deepEqual(secretWatch!.map(baseSecret('v1.12')), [{ namespace: NAMESPACE, name: 'mycluster' }]);
  assert.deepEqual(hostWatch!.map(await t.host('cp-02')), [{ namespace: NAMESPACE, name: 'mycluster' }]);
  await t.reconcile();
  assert.equal(secretText(await t.secret('cp-02'), CONFIG_KEY), secretText(secret, CONFIG_KEY));
});
