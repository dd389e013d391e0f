// metalbox as a user runs it: the image `npm run image` builds, imported into a real single-node
// cluster (test/env/cluster.ts: kubelet, containerd, runc, kube-proxy, CNI), installed with
// `kubectl apply -k deploy/` unchanged. Both replicas become Ready, the leader keeps its Lease,
// and deleting the leader's Pod hands the Lease to the other replica. Then the same with the Helm
// chart, and `helm uninstall` takes everything but the CRDs with it. Last, a site's install (deploy/
// plus an overlay with the config, the Matchbox client Secret) provisions a BareMetalHost applied
// with kubectl: Matchbox and sushy-tools on the host end of the node's veth, a SIMULATED machine
// booting through them and reaching the config server and event sink through the NodePorts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { redfishSystemView } from '../../../src/sim/bmc-view.ts';
import { SimulatedMachine } from '../../../src/sim/machine.ts';
import { talosEventReporter } from '../../../src/sim/talos-events.ts';
import { type ClusterPeer, startCluster } from '../../env/cluster.ts';
import { type BuiltImage, buildImage } from '../../env/image.ts';
import { runKubectl } from '../../env/kubectl.ts';
import { startMatchbox } from '../../env/matchbox.ts';
import { peerBinary, scratchDir } from '../../env/peers.ts';
import { startSushy } from '../../env/sushy.ts';
import { waitFor } from '../../env/wait.ts';
import { seedHosts, seedTalosConfig } from '../../fixtures/talos/seed.ts';
import { baseSecret } from '../../fixtures/talos/store.ts';
import { TEST_HOST_CONFIG, writeAssets } from '../baremetalhost/world.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const NS = 'metalbox-system';
const DEPLOYMENT = 'metalbox-controller';
const LEASE = 'metalbox-controller';

const scratch = scratchDir('in-cluster');
let cluster: ClusterPeer;
let image: BuiltImage;
let clusterSeconds = 0;
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  image = await buildImage(join(scratch.dir, 'image'));
  const started = performance.now();
  cluster = await startCluster();
  clusterSeconds = (performance.now() - started) / 1000;
  await cluster.importImage(image.archive);
});
after(async () => {
  try {
    // A cleanup that waits on something no longer coming (a simulated boot cut short) must not end
    // the process with an empty event loop before the rest ran: each gets at most 10 s.
    for (const c of cleanups.reverse()) {
      await Promise.race([c(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    await cluster?.stop();
  } finally {
    scratch.remove();
  }
});

interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  status: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number; ready: boolean }[];
  };
}
interface Lease {
  spec: { holderIdentity?: string; renewTime?: string; leaseTransitions?: number };
}

const kubectl = (...args: string[]) => runKubectl(cluster.kubeconfigFile, args, { cwd: repo });

async function get<T>(path: string): Promise<T> {
  const res = await cluster.request('GET', path);
  assert.equal(res.status, 200, `GET ${path}: ${JSON.stringify(res.body)}`);
  return res.body as T;
}
const controllerPods = async () =>
  (
    await get<{ items: Pod[] }>(
      `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/name=metalbox')}`,
    )
  ).items.filter((p) => !p.metadata.deletionTimestamp);
const lease = () => get<Lease>(`/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${LEASE}`);
const restarts = (pods: Pod[]) =>
  pods.flatMap((p) => p.status.containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0);
/** The identity is `<pod name>_<random>` (the Pod's hostname). */
const holderPod = (l: Lease) => l.spec.holderIdentity?.split('_')[0];

async function waitReady(what: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    async () => {
      const d = await get<{
        metadata: { generation: number };
        status: { observedGeneration?: number; readyReplicas?: number; updatedReplicas?: number };
      }>(`/apis/apps/v1/namespaces/${NS}/deployments/${DEPLOYMENT}`);
      const pods = await controllerPods();
      return (
        d.status.observedGeneration === d.metadata.generation &&
        d.status.readyReplicas === 2 &&
        d.status.updatedReplicas === 2 &&
        pods.length === 2
      );
    },
    {
      what,
      timeoutMs,
      intervalMs: 500,
      context: () => `${cluster.logTail('kubelet', 20)}`,
    },
  );
}

test('kubectl apply -k deploy/ brings both replicas to Ready, each answering /readyz', async (t) => {
  t.diagnostic(
    `image ${image.digest} built in ${image.seconds.toFixed(1)} s; cluster up in ${clusterSeconds.toFixed(1)} s`,
  );
  const started = performance.now();
  await kubectl('apply', '-k', 'deploy/');
  await waitReady('the Deployment at 2/2 Ready');
  t.diagnostic(`apply → 2/2 Ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const proxied = performance.now();
  for (const pod of await controllerPods()) {
    const res = await cluster.request(
      'GET',
      `/api/v1/namespaces/${NS}/pods/${pod.metadata.name}:8080/proxy/readyz`,
    );
    assert.equal(res.status, 200, `${pod.metadata.name} /readyz: ${JSON.stringify(res.body)}`);
  }
  t.diagnostic(
    `/readyz through the apiserver's Pod proxy in ${((performance.now() - proxied) / 1000).toFixed(1)} s`,
  );
});

test('server-side apply over that install conflicts with nothing and then leaves nothing to change', async () => {
  const applied = await kubectl('apply', '--server-side', '-k', 'deploy/');
  assert.equal(applied.stderr.trim(), '');
  const diff = await kubectl('diff', '--server-side', '-k', 'deploy/');
  assert.equal(diff.stdout.trim(), '', 'kubectl diff --server-side -k deploy/ shows no change');
});

test('the Talos config server and the event sink answer on the node address through the provisioning NodePorts', async () => {
  // The config server refuses an unknown host with its 404 page; the event sink is gRPC on TCP.
  const res = await fetch(`http://${cluster.nodeIP}:30081/v1/config/metalbox-system.nobody?t=x`);
  assert.equal(res.status, 404);
  assert.equal(await res.text(), '404 page not found\n');
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host: cluster.nodeIP, port: 30402 }, () => {
      socket.end();
      resolve();
    });
    socket.once('error', reject);
  });
});

test('the leader renews its Lease for 60 s and no replica restarts', async () => {
  await waitFor(async () => holderPod(await lease()), { what: 'a Lease holder', timeoutMs: 30_000 });
  const first = await lease();
  const renewals = new Set<string>();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const l = await lease();
    assert.equal(l.spec.holderIdentity, first.spec.holderIdentity, 'the same replica holds the Lease');
    assert.equal(l.spec.leaseTransitions, first.spec.leaseTransitions);
    if (l.spec.renewTime) renewals.add(l.spec.renewTime);
    await new Promise((r) => setTimeout(r, 3000));
  }
  // Renewed every 2 s; sampled every 3 s, so nearly every sample sees a new renewTime.
  assert.ok(renewals.size >= 10, `renewTime advanced only ${renewals.size} times in 60 s`);
  const pods = await controllerPods();
  assert.equal(restarts(pods), 0, 'no container restarted');
  assert.equal(pods.length, 2);
});

test('deleting the leader Pod hands the Lease to the other replica in under 20 s', async (t) => {
  const before = await lease();
  const leader = holderPod(before);
  assert.ok(leader, 'a replica holds the Lease');
  const started = performance.now();
  await kubectl('-n', NS, 'delete', 'pod', leader, '--wait=false');
  const next = await waitFor(
    async () => {
      const pod = holderPod(await lease());
      // A clean stop releases the Lease (holder "") before the other replica takes it.
      return pod && pod !== leader ? pod : undefined;
    },
    { what: 'another replica to take the Lease', timeoutMs: 20_000, intervalMs: 250 },
  );
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`${leader} → ${next} in ${seconds.toFixed(1)} s`);
  assert.ok(seconds < 20);
  await waitReady('the replacement replica Ready');
});

test('helm install of the chart gives the same Ready controller; helm uninstall leaves no controller object behind', async (t) => {
  // Off with the kustomize install first (its CRDs, namespace and cluster-wide RBAC included).
  await kubectl('delete', '-k', 'deploy/', '--wait=true', '--timeout=180s');
  const helmHome = join(scratch.dir, 'helm');
  const helm = (...args: string[]) =>
    run(peerBinary('helm'), [...args, '--kubeconfig', cluster.kubeconfigFile], {
      cwd: repo,
      env: {
        ...process.env,
        HELM_CACHE_HOME: join(helmHome, 'cache'),
        HELM_CONFIG_HOME: join(helmHome, 'config'),
        HELM_DATA_HOME: join(helmHome, 'data'),
      },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((e: { message: string; stdout?: string; stderr?: string }) => {
      throw new Error(`helm ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    });

  const started = performance.now();
  await helm('install', 'metalbox', 'deploy/helm/metalbox', '--wait', '--timeout', '180s');
  await waitReady('the Helm-installed Deployment at 2/2 Ready');
  t.diagnostic(`helm install → 2/2 Ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  for (const pod of await controllerPods()) {
    const res = await cluster.request(
      'GET',
      `/api/v1/namespaces/${NS}/pods/${pod.metadata.name}:8080/proxy/readyz`,
    );
    assert.equal(res.status, 200);
  }
  await waitFor(async () => holderPod(await lease()), { what: 'a Lease holder', timeoutMs: 30_000 });

  await helm('uninstall', 'metalbox', '--wait', '--timeout', '180s');
  // The namespace goes with the release, and with it the Lease and the token Secret.
  await waitFor(async () => (await cluster.request('GET', `/api/v1/namespaces/${NS}`)).status === 404, {
    what: `namespace ${NS} deleted`,
    timeoutMs: 120_000,
    intervalMs: 1000,
  });
  const selector = encodeURIComponent('app.kubernetes.io/name=metalbox');
  for (const path of [
    '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    '/apis/apps/v1/deployments',
    '/api/v1/services',
    '/api/v1/configmaps',
    '/api/v1/serviceaccounts',
    '/api/v1/pods',
  ]) {
    const left = await get<{ items: { metadata: { name: string } }[] }>(`${path}?labelSelector=${selector}`);
    assert.deepEqual(
      left.items.map((i) => i.metadata.name),
      [],
      `${path} left behind`,
    );
  }
  // Helm never deletes what crds/ installed (that would delete every host): they stay, as documented.
  const crd = await cluster.request(
    'GET',
    '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/baremetalhosts.metalbox.io',
  );
  assert.equal(crd.status, 200);
});

test('a BareMetalHost applied with kubectl reaches provisioned through the in-cluster controller', async (t) => {
  // Matchbox and a Redfish BMC emulator on the host end of the node's veth: the Pods reach them
  // through the bridge's masquerade, as a management cluster reaches its provisioning network.
  const dir = join(scratch.dir, 'bmh');
  mkdirSync(dir, { recursive: true });
  const matchbox = await startMatchbox({ host: cluster.hostIP });
  cleanups.push(() => matchbox.destroy());
  writeAssets(matchbox.assetsPath);
  const sushy = await startSushy({
    host: cluster.hostIP,
    systems: [{ name: 'cp-01', macs: ['52:54:00:aa:01:01'] }],
  });
  cleanups.push(() => sushy.destroy());
  const system = sushy.systems[0]!;

  // The install a user makes for a site: deploy/ plus an overlay that sets the config.
  const config = {
    matchbox: {
      endpoints: [
        {
          name: 'site',
          endpoint: matchbox.rpcEndpoint,
          httpURL: matchbox.httpURL,
          tls: {
            caFile: '/etc/metalbox/matchbox/ca.crt',
            certFile: '/etc/metalbox/matchbox/tls.crt',
            keyFile: '/etc/metalbox/matchbox/tls.key',
          },
        },
      ],
      driftScanIntervalSeconds: 3600,
      verifyBootAnswers: false,
    },
    baremetalhost: TEST_HOST_CONFIG,
    talos: {
      configServer: { listen: '0.0.0.0:8081', advertiseURL: `http://${cluster.nodeIP}:30081` },
      eventSink: { listen: '0.0.0.0:4002', advertiseAddress: `${cluster.nodeIP}:30402` },
      tokenTTLSeconds: 600,
    },
  };
  const overlay = join(dir, 'site');
  mkdirSync(overlay);
  writeFileSync(
    join(overlay, 'kustomization.yaml'),
    stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [relative(overlay, join(repo, 'deploy'))],
      patches: [
        {
          target: { kind: 'ConfigMap', name: 'metalbox-controller-config' },
          patch: stringify([{ op: 'replace', path: '/data/controller.yaml', value: stringify(config) }]),
        },
      ],
    }),
  );
  const started = performance.now();
  await kubectl('apply', '-k', overlay);
  await kubectl(
    '-n',
    NS,
    'create',
    'secret',
    'generic',
    'metalbox-matchbox-client',
    `--from-file=ca.crt=${matchbox.pki.ca.certFile}`,
    `--from-file=tls.crt=${matchbox.pki.client.certFile}`,
    `--from-file=tls.key=${matchbox.pki.client.keyFile}`,
  );
  await kubectl('-n', NS, 'rollout', 'restart', `deploy/${DEPLOYMENT}`);
  await waitFor(
    async () => {
      const pods = await controllerPods();
      return pods.length === 2 && pods.every((p) => p.status.containerStatuses?.every((c) => c.ready));
    },
    { what: 'the restarted replicas Ready', timeoutMs: 180_000, intervalMs: 1000 },
  );

  // What a user applies: the Talos base config and its TalosMachineConfig, a boot profile, the BMC
  // credentials and the host.
  const seed = seedHosts().find((h) => h.metadata.name === 'cp-01');
  assert.ok(seed?.spec.network);
  const objects = [
    baseSecret('v1.12'),
    seedTalosConfig('v1.12'),
    {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxProfile',
      metadata: { name: 'talos-control-plane', namespace: NS },
      spec: {
        kernel: '/assets/vmlinuz',
        initrd: ['/assets/initramfs.xz'],
        args: ['initrd=initramfs.xz', 'console=ttyS0', 'talos.platform=metal'],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'cp-01-bmc', namespace: NS },
      type: 'Opaque',
      stringData: { username: sushy.username, password: sushy.password },
    },
    {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'BareMetalHost',
      metadata: { name: 'cp-01', namespace: NS },
      spec: {
        online: true,
        bootMACAddress: system.macs[0],
        bmc: {
          address: `redfish+http://${sushy.host}:${sushy.port}/redfish/v1/Systems/${system.uuid}`,
          credentialsName: 'cp-01-bmc',
        },
        bootMode: 'UEFI',
        role: 'controlplane',
        profileRef: { name: 'talos-control-plane' },
        talosConfigRef: { name: 'mycluster' },
        network: seed.spec.network,
        bootTarget: 'install',
        powerPolicy: 'enforce',
        inspectionMode: 'bmc',
      },
    },
  ];
  const file = join(dir, 'host.yaml');
  writeFileSync(file, objects.map((o) => stringify(o)).join('---\n'));
  await kubectl('apply', '-f', file);

  // The SIMULATED machine: boots through Matchbox when its BMC says so, fetches its config from the
  // NodePort and reports the install over gRPC, both from the host end of the veth.
  const machine = new SimulatedMachine({
    name: 'cp-01',
    mac: system.macs[0] ?? '',
    uuid: system.uuid,
    bmc: redfishSystemView({
      baseUrl: sushy.url,
      systemPath: `/redfish/v1/Systems/${system.uuid}`,
      username: sushy.username,
      password: sushy.password,
    }),
    matchboxUrls: [matchbox.httpURL],
    reporter: talosEventReporter({
      sink: `${cluster.nodeIP}:30402`,
      localAddress: cluster.hostIP,
      hostname: 'talos-cp-01',
    }),
    pollMs: 300,
    installMs: 500,
  });
  cleanups.push(() => machine.stop());
  machine.start();

  type Host = { status?: { provisioning?: { state?: string }; talos?: { configFetchedFrom?: string } } };
  const host = await waitFor(
    async () => {
      const h = await get<Host>(`/apis/metalbox.io/v1alpha1/namespaces/${NS}/baremetalhosts/cp-01`);
      return h.status?.provisioning?.state === 'provisioned' ? h : undefined;
    },
    {
      what: 'cp-01 provisioned',
      timeoutMs: 240_000,
      intervalMs: 1000,
      context: () => `${JSON.stringify(machine.boots)}`,
    },
  );
  t.diagnostic(`apply → provisioned in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(host.status?.talos?.configFetchedFrom, cluster.hostIP, 'the NodePort kept the host address');
  assert.equal(machine.installs, 1);
});
