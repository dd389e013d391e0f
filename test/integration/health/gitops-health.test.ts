// Health as GitOps tools read it, on live objects from a real kube-apiserver at each stage of a
// host's life: kstatus computed by sigs.k8s.io/cli-utils (what Flux and kpt use) and Argo CD's
// health check from deploy/argocd (merged into an argocd-cm by kustomize, as a user installs it,
// and run by gopher-lua as Argo CD runs it). Both come from test/tools/kstatus-check (scripts/setup).
// The controllers run in this process against the Matchbox pair and sushy-tools (world.ts).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import { HOST_KIND, SECRET_KIND } from '../../../src/controllers/baremetalhost/kinds.ts';
import { talosMachineConfigController } from '../../../src/controllers/talosmachineconfig.ts';
import { BMH_ANNOTATIONS } from '../../../src/crds/baremetalhost.ts';
import { StoreEventRecorder } from '../../../src/runtime/events.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import type { Resource, ResourceKind } from '../../../src/runtime/resource.ts';
import { TalosMetrics } from '../../../src/talos/metrics.ts';
import type { KubeApiserverPeer } from '../../env/kube.ts';
import { peerBinary, scratchDir } from '../../env/peers.ts';
import { waitFor } from '../../env/wait.ts';
import { baseConfig } from '../../fixtures/talos/seed.ts';
import { type Host, NAMESPACE, World } from '../baremetalhost/world.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const scratch = scratchDir('gitops-health');
const TMC_KIND: ResourceKind = {
  group: 'metalbox.io',
  version: 'v1alpha1',
  kind: 'TalosMachineConfig',
  plural: 'talosmachineconfigs',
  namespaced: true,
};
const PLURAL: Record<string, string> = {
  BareMetalHost: 'baremetalhosts',
  MatchboxProfile: 'matchboxprofiles',
  MatchboxGroup: 'matchboxgroups',
  TalosMachineConfig: 'talosmachineconfigs',
};

let world: World;
let kube: KubeApiserverPeer;
let argocdData: string;
let talos: Manager | undefined;

before(async () => {
  // The argocd-cm a user gets from `components: [deploy/argocd]` (kubectl's kustomize).
  const { stdout } = await run('kubectl', ['kustomize', join(repo, 'test/fixtures/argocd')]);
  const cm = parse(stdout) as { metadata: { name: string }; data: Record<string, string> };
  assert.equal(cm.metadata.name, 'argocd-cm');
  assert.equal(cm.data['timeout.reconciliation'], '180s', "the install's own settings are kept");
  argocdData = join(scratch.dir, 'argocd-cm-data.json');
  writeFileSync(argocdData, JSON.stringify(cm.data));

  world = await World.start({ backend: 'kube', systems: 4, hostConfig: { maxProvisioningRetries: 1 } });
  kube = (world.backend as typeof world.backend & { kube: KubeApiserverPeer }).kube;
});
after(async () => {
  await talos?.stop();
  await world?.close();
  scratch.remove();
});

interface Verdict {
  kind: string;
  name: string;
  kstatus: { status: string; message: string };
  argo?: { status: string; message: string };
  error?: string;
}

/** The object as the apiserver returns it (raw JSON, defaults applied). */
async function live(kind: string, name: string): Promise<Resource> {
  const res = await kube.request(
    'GET',
    `/apis/metalbox.io/v1alpha1/namespaces/${NAMESPACE}/${PLURAL[kind]}/${name}`,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as Resource;
}

/** kstatus and Argo CD health of live objects, from the Go checker. */
async function health(objects: Resource[]): Promise<Verdict[]> {
  const child = spawn(peerBinary('kstatusCheck'), [argocdData], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  child.stdin.end(JSON.stringify(objects));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 0, err);
  const verdicts = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Verdict);
  for (const v of verdicts) {
    assert.equal(v.error, undefined, `${v.kind} ${v.name}: ${v.error}`);
    assert.ok(v.argo, `${v.kind} ${v.name}: no Argo CD health check for the kind`);
  }
  return verdicts;
}

async function expectHealth(
  kind: string,
  name: string,
  kstatus: string,
  argo: string,
  message?: RegExp,
): Promise<Verdict> {
  const obj = await live(kind, name);
  const [v] = await health([obj]);
  const what = `${kind} ${name}: ${JSON.stringify(v)}\nconditions: ${JSON.stringify((obj.status as { conditions?: unknown })?.conditions)}`;
  assert.equal(v!.kstatus.status, kstatus, what);
  assert.equal(v!.argo!.status, argo, what);
  if (message) assert.match(`${v!.kstatus.message}\n${v!.argo!.message}`, message, what);
  return v!;
}

/** `kubectl get bmh <name>` as column → cell (cells may be empty: cut at the header's offsets). */
async function kubectlGetBmh(name: string): Promise<Record<string, string>> {
  const { stdout } = await run('kubectl', [
    ...['--kubeconfig', kube.kubeconfigFile('admin'), '-n', NAMESPACE, 'get', 'bmh', name],
  ]);
  const [header, row] = stdout.trimEnd().split('\n') as [string, string];
  const starts = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  return Object.fromEntries(
    starts.map((c, i) => [c.name, row.slice(c.at, starts[i + 1]?.at ?? row.length).trim()]),
  );
}

const condition = (h: Host, type: string) => h.status?.conditions?.find((c) => c.type === type);

test('just applied, before any controller looked at it: InProgress / Progressing (not Current)', async () => {
  await world.addHost('web-1', world.systems[0]!);
  await expectHealth('BareMetalHost', 'web-1', 'InProgress', 'Progressing', /observed generation is 0/);
  await expectHealth('MatchboxProfile', 'talos-control-plane', 'InProgress', 'Progressing');
  await world.startController();
});

test('provisioning: InProgress / Progressing with what it waits for; provisioned: Current / Healthy', async () => {
  await world.waitForState('web-1', 'provisioning');
  await expectHealth('BareMetalHost', 'web-1', 'InProgress', 'Progressing');
  const provisioned = await world.waitForState('web-1', 'provisioned');
  // The Talos node's readiness is its own condition; Ready is the host's health.
  await waitFor(async () => condition(await world.host('web-1'), 'Ready')?.status === 'True', {
    what: 'web-1 Ready',
    timeoutMs: 30_000,
  });
  assert.equal(condition(provisioned, 'Reconciling'), undefined);
  await expectHealth('BareMetalHost', 'web-1', 'Current', 'Healthy');
  for (const [kind, name] of [
    ['MatchboxProfile', 'talos-control-plane'],
    ['MatchboxProfile', 'web-1-install'],
    ['MatchboxProfile', 'web-1-disk'],
    ['MatchboxGroup', 'web-1-boot'],
  ] as const) {
    await waitFor(async () => (await health([await live(kind, name)]))[0]!.kstatus.status === 'Current', {
      what: `${kind} ${name} Current`,
      timeoutMs: 30_000,
    });
    await expectHealth(kind, name, 'Current', 'Healthy');
  }
});

test('an identity conflict: Failed / Degraded, and the reason is in kubectl get', async () => {
  await world.addHost('web-1-twin', world.systems[1]!, {
    spec: { bootMACAddress: world.systems[0]!.mac },
    machine: false,
  });
  await waitFor(async () => condition(await world.host('web-1-twin'), 'Stalled')?.status === 'True', {
    what: 'web-1-twin Stalled',
    timeoutMs: 30_000,
  });
  await expectHealth('BareMetalHost', 'web-1-twin', 'Failed', 'Degraded', /Conflict|boot MAC/);
  const row = await kubectlGetBmh('web-1-twin');
  assert.equal(row.READY, 'False', JSON.stringify(row));
  assert.equal(row.REASON, 'Conflict', JSON.stringify(row));
  await world.store.delete(HOST_KIND, { namespace: NAMESPACE, name: 'web-1-twin' });
});

test('refused BMC credentials and used-up install attempts: Failed / Degraded', async () => {
  await world.addHost('web-2', world.systems[3]!, { password: 'not-the-password', machine: false });
  // No machine answers: the single allowed install attempt times out.
  await world.addHost('web-3', world.systems[2]!, {
    spec: { provisioningTimeoutSeconds: 3 },
    machine: false,
  });
  await waitFor(async () => condition(await world.host('web-2'), 'Stalled')?.status === 'True', {
    what: 'web-2 Stalled',
    timeoutMs: 60_000,
  });
  await expectHealth(
    'BareMetalHost',
    'web-2',
    'Failed',
    'Degraded',
    /CredentialsRefused|rejected the credentials/,
  );
  await waitFor(async () => condition(await world.host('web-3'), 'Stalled')?.reason === 'RetriesExhausted', {
    what: 'web-3 RetriesExhausted',
    timeoutMs: 120_000,
  });
  await expectHealth('BareMetalHost', 'web-3', 'Failed', 'Degraded', /install attempt/);
});

test('a TalosMachineConfig that cannot render: Failed / Degraded; once fixed: Current / Healthy', async () => {
  const registry = new Registry();
  talos = new Manager({ store: world.store, registry, logger: world.logs, namespace: NAMESPACE });
  talos.add(
    talosMachineConfigController({
      store: world.store,
      events: new StoreEventRecorder({ store: world.store, component: 'metalbox-test', logger: world.logs }),
      metrics: new TalosMetrics(registry),
    }),
  );
  await talos.start();
  await world.apply(TMC_KIND, {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'TalosMachineConfig',
    metadata: { name: 'broken', namespace: NAMESPACE },
    spec: {
      talosVersion: 'v1.10',
      clusterName: 'mycluster',
      clusterEndpoint: 'https://10.0.20.100:6443',
      baseConfigSecretRef: { name: 'no-such-secret' },
      installerImage: 'ghcr.io/siderolabs/installer:v1.10.6',
      installDisk: '/dev/sda',
    },
  } as unknown as Resource);
  // Rendering needs a host that refers to it.
  await world.patchHost('web-1', (h) => {
    h.spec.talosConfigRef = { name: 'broken' };
  });
  await waitFor(
    async () => (await health([await live('TalosMachineConfig', 'broken')]))[0]!.kstatus.status === 'Failed',
    { what: 'TalosMachineConfig broken Failed', timeoutMs: 30_000 },
  );
  await expectHealth('TalosMachineConfig', 'broken', 'Failed', 'Degraded', /RenderFailed|no-such-secret/);
  // A host whose install needs that config says so itself: Stalled, with the render error.
  await world.addHost('web-4', world.systems[1]!, {
    spec: { talosConfigRef: { name: 'broken' } },
    machine: false,
  });
  await waitFor(async () => condition(await world.host('web-4'), 'Stalled')?.reason === 'RenderFailed', {
    what: 'web-4 Stalled RenderFailed',
    timeoutMs: 60_000,
  });
  await expectHealth('BareMetalHost', 'web-4', 'Failed', 'Degraded', /no-such-secret/);
  // The person creates the base-config Secret: it renders, and is healthy.
  await world.store.create(SECRET_KIND, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'no-such-secret', namespace: NAMESPACE },
    type: 'Opaque',
    stringData: {
      'controlplane.yaml': baseConfig('v1.10', 'controlplane'),
      'worker.yaml': baseConfig('v1.10', 'worker'),
    },
  } as unknown as Resource);
  let last = '';
  await waitFor(
    async () => {
      const tmc = await live('TalosMachineConfig', 'broken');
      last = JSON.stringify(tmc.status);
      return (await health([tmc]))[0]!.kstatus.status === 'Current';
    },
    { what: 'TalosMachineConfig broken Current', timeoutMs: 30_000, context: () => last },
  );
  await expectHealth('TalosMachineConfig', 'broken', 'Current', 'Healthy');
  await world.waitForHost(
    'web-4',
    (h) => condition(h, 'ConfigRendered')?.status === 'True' && condition(h, 'Stalled') === undefined,
    'web-4 no longer stalled once its config renders',
    30_000,
  );
  await world.store.delete(HOST_KIND, { namespace: NAMESPACE, name: 'web-4' });
});

test('deprovisioned: Ready is recomputed for the new spec; no Talos readiness or install conditions are left', async () => {
  // The node's readiness (here from the simulated machine, once booted from disk) is TalosReady.
  await world.waitForHost(
    'web-1',
    (h) => condition(h, 'TalosReady')?.status === 'True',
    'the simulated machine reports ready',
    60_000,
  );
  await world.patchHost('web-1', (h) => {
    delete h.spec.profileRef;
    h.spec.bootTarget = 'disk';
  });
  const deprovisioning = await world.waitForHost(
    'web-1',
    (h) => condition(h, 'Ready')?.observedGeneration === h.metadata.generation,
    'Ready computed for the new generation',
    30_000,
  );
  if (deprovisioning.status?.provisioning?.state !== 'available') {
    assert.equal(condition(deprovisioning, 'Ready')?.status, 'False');
    assert.equal(condition(deprovisioning, 'Reconciling')?.status, 'True');
  }
  await world.waitForState('web-1', 'available');
  // spec.online is still true, so the available host is powered on again: Ready says PowerChanging
  // until that settles, then Available.
  const available = await world.waitForHost(
    'web-1',
    (h) => condition(h, 'Ready')?.reason === 'Available',
    'Ready Available once power settled',
    60_000,
  );
  for (const stale of ['TalosReady', 'Installed', 'BootedFromDisk', 'ConfigDelivered', 'BootRequested'])
    assert.equal(condition(available, stale), undefined, `${stale} left from the install`);
  assert.equal(condition(available, 'Provisioned')?.status, 'False');
  assert.equal(condition(available, 'Ready')?.reason, 'Available');
  await expectHealth('BareMetalHost', 'web-1', 'Current', 'Healthy');
});

test('paused and detached read as Suspended in Argo CD; detached is visible in kubectl get', async () => {
  await world.patchHost('web-1', (h) => {
    h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.detached]: 'true' };
  });
  await waitFor(async () => condition(await world.host('web-1'), 'Ready')?.reason === 'Detached', {
    what: 'web-1 detached',
    timeoutMs: 30_000,
  });
  await expectHealth('BareMetalHost', 'web-1', 'InProgress', 'Suspended');
  await world.patchHost('web-1', (h) => {
    h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.paused]: 'true' };
  });
  const paused = await live('BareMetalHost', 'web-1');
  const [v] = await health([paused]);
  assert.equal(v!.argo!.status, 'Suspended');
  const row = await kubectlGetBmh('web-1');
  assert.equal(row.PAUSED, 'true', JSON.stringify(row));
  assert.equal(row.REASON, 'Detached', JSON.stringify(row));
});
