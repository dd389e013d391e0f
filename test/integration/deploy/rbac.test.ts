// deploy/'s RBAC on a real kube-apiserver: applied as an admin, then exercised with the controller's
// own identity (system:serviceaccount:metalbox-system:metalbox-controller) through the same store,
// event recorder and Lease elector the controller runs, and probed for what it must not do.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { storeOwner } from '../../../src/cli/store-owner.ts';
import { isGone } from '../../../src/runtime/errors.ts';
import { StoreEventRecorder } from '../../../src/runtime/events.ts';
import type { Logger } from '../../../src/runtime/logger.ts';
import type { Resource, ResourceKind } from '../../../src/runtime/resource.ts';
import { KubeStore } from '../../../src/stores/kube.ts';
import { LeaseElector } from '../../../src/stores/kube-leader.ts';
import { CONTROLLER_NAMESPACE, type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { waitFor } from '../../env/wait.ts';
import { loadDeployManifests } from '../../fixtures/deploy-manifests.ts';
import { applyManifests } from './apply.ts';

const BareMetalHost: ResourceKind = {
  group: 'metalbox.io',
  version: 'v1alpha1',
  kind: 'BareMetalHost',
  plural: 'baremetalhosts',
  namespaced: true,
};
const MatchboxGroup: ResourceKind = { ...BareMetalHost, kind: 'MatchboxGroup', plural: 'matchboxgroups' };
const OTHER_NAMESPACE = 'tenant-a';
const NS = CONTROLLER_NAMESPACE;

let kube: KubeApiserverPeer;
let controller: KubeStore;

function seedHost(): Resource {
  const text = readFileSync(new URL('../../../manifests/baremetalhosts.yaml', import.meta.url), 'utf8');
  const host = parseAllDocuments(text)[0]!.toJS() as Resource;
  assert.equal(host.kind, 'BareMetalHost');
  return host;
}

async function admin(method: string, path: string, body?: unknown) {
  const res = await kube.request(method, path, body, 'admin');
  assert.ok(res.status < 300, `${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as Resource;
}

async function asController(method: string, path: string, body?: unknown): Promise<number> {
  return (await kube.request(method, path, body, 'controller')).status;
}

before(async () => {
  kube = await startKubeApiserver();
  await applyManifests(kube, loadDeployManifests());
  await admin('POST', '/api/v1/namespaces', { metadata: { name: OTHER_NAMESPACE } });
  for (const namespace of [NS, OTHER_NAMESPACE]) {
    await admin('POST', `/api/v1/namespaces/${namespace}/secrets`, {
      metadata: { name: 'bmc' },
      stringData: { username: 'u', password: 'p' },
    });
  }
  await admin('POST', `/apis/metalbox.io/v1alpha1/namespaces/${NS}/baremetalhosts`, seedHost());
  controller = new KubeStore({
    kubeConfig: kube.kubeConfig('controller'),
    fieldManager: 'metalbox-controller',
  });
});
after(async () => {
  await controller?.close();
  await kube?.stop();
});

describe('the controller identity can do what the controller needs', () => {
  it('lists and watches BareMetalHosts in every namespace, updates them and patches their status', async () => {
    const list = await controller.list(BareMetalHost);
    assert.equal(list.items.length, 1);
    const host = list.items[0]!;
    const ac = new AbortController();
    const seen: string[] = [];
    const watching = (async () => {
      for await (const event of controller.watch(BareMetalHost, {
        resourceVersion: list.resourceVersion,
        signal: ac.signal,
      })) {
        if (event.type !== 'BOOKMARK') seen.push(`${event.type} ${event.object.metadata.name}`);
        if (seen.length >= 2) break;
      }
    })().catch((error: unknown) => {
      if (!isGone(error)) throw error;
    });
    const withFinalizer = await controller.update(BareMetalHost, {
      ...host,
      metadata: { ...host.metadata, finalizers: ['metalbox.io/baremetalhost'] },
    });
    assert.deepEqual(withFinalizer.metadata.finalizers, ['metalbox.io/baremetalhost']);
    const patched = await controller.patchStatus<Resource<unknown, { provisioning?: { state: string } }>>(
      BareMetalHost,
      { namespace: NS, name: host.metadata.name },
      { provisioning: { state: 'registering' } },
    );
    assert.equal(patched.status?.provisioning?.state, 'registering');
    await waitFor(async () => seen.length >= 2, {
      what: 'two MODIFIED events on the watch',
      timeoutMs: 10_000,
    });
    ac.abort();
    await watching;
    assert.deepEqual(seen, [`MODIFIED ${host.metadata.name}`, `MODIFIED ${host.metadata.name}`]);
  });

  it('creates and deletes the MatchboxGroups a host owns', async () => {
    const group = await controller.create<Resource>(MatchboxGroup, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxGroup',
      metadata: { namespace: NS, name: 'rbac-probe' },
      spec: { profileRef: { name: 'talos-worker' }, selector: { mac: 'aa:bb:cc:dd:ee:99' } },
    });
    assert.ok(group.metadata.uid);
    await controller.delete(MatchboxGroup, { namespace: NS, name: 'rbac-probe' });
  });

  it('records Events, a repeat bumping the count', async () => {
    const warnings: object[] = [];
    const logger: Logger = {
      debug() {},
      info() {},
      warn: (obj) => warnings.push(obj),
      error: (obj) => warnings.push(obj),
    };
    const recorder = new StoreEventRecorder({ store: controller, component: 'metalbox-controller', logger });
    const host = await controller.get(BareMetalHost, { namespace: NS, name: seedHost().metadata.name });
    recorder.event(host, 'Normal', 'RbacProbe', 'probing RBAC');
    recorder.event(host, 'Normal', 'RbacProbe', 'probing RBAC');
    await recorder.flush();
    assert.deepEqual(warnings, []);
    const events = (await admin('GET', `/api/v1/namespaces/${NS}/events`)) as unknown as {
      items: { reason: string; count: number; eventTime?: string }[];
    };
    const probe = events.items.filter((e) => e.reason === 'RbacProbe');
    assert.deepEqual(
      probe.map((e) => e.count),
      [2],
    );
    // The apiserver keeps the microsecond eventTime that orders Events within one second.
    assert.match(probe[0]?.eventTime ?? '', /\.\d{6}Z$/);
  });

  it('takes, renews and releases its Lease in metalbox-system', async () => {
    const elector = new LeaseElector({
      kubeConfig: kube.kubeConfig('controller'),
      namespace: NS,
      name: 'metalbox-controller',
      identity: 'rbac-probe',
      retryPeriodMs: 500,
    });
    let lost: string | undefined;
    const done = elector.run(
      () => {},
      (reason) => {
        lost = reason;
      },
    );
    await waitFor(async () => elector.leading, {
      what: 'the controller identity to lead',
      timeoutMs: 10_000,
    });
    // Survives a few renewals (each an update of the Lease).
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal(elector.leading, true);
    await elector.release();
    await done;
    assert.equal(lost, 'stopped');
    const lease = (await admin(
      'GET',
      `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/metalbox-controller`,
    )) as {
      spec?: { holderIdentity?: string };
    };
    assert.equal(lease.spec?.holderIdentity, '', 'release cleared the holder');
  });

  it('writes Secrets in its own namespace (rendered Talos configs, the config-token key)', async () => {
    const path = `/api/v1/namespaces/${NS}/secrets`;
    assert.equal(await asController('POST', path, { metadata: { name: 'rbac-written' } }), 201);
    assert.equal(await asController('DELETE', `${path}/rbac-written`), 200);
  });

  it('reads the cluster id (kube-system’s uid), its default Matchbox owner identity', async () => {
    const owner = await storeOwner({ store: controller, spec: { type: 'kube' }, close: async () => {} });
    const uid = (await admin('GET', '/api/v1/namespaces/kube-system')).metadata.uid!;
    assert.match(owner, /^kube-[0-9a-f]{12}$/);
    assert.ok(!owner.includes(uid.slice(0, 12)), 'only a digest of the uid is shown');
    assert.equal(
      await storeOwner({ store: controller, spec: { type: 'kube' }, close: async () => {} }),
      owner,
    );
  });

  it('reads Secrets in its own namespace', async () => {
    assert.equal(await asController('GET', `/api/v1/namespaces/${NS}/secrets/bmc`), 200);
    assert.equal(await asController('GET', `/api/v1/namespaces/${NS}/secrets`), 200);
    assert.equal(
      await asController('GET', `/api/v1/namespaces/${NS}/secrets?watch=true&timeoutSeconds=1`),
      200,
    );
  });
});

describe('the controller identity can do no more', () => {
  const forbidden: [string, string, string, unknown?][] = [
    ['read a Secret in another namespace', 'GET', `/api/v1/namespaces/${OTHER_NAMESPACE}/secrets/bmc`],
    ['list Secrets in every namespace', 'GET', '/api/v1/secrets'],
    ['list Secrets in another namespace', 'GET', `/api/v1/namespaces/${OTHER_NAMESPACE}/secrets`],
    [
      'create a Secret in another namespace',
      'POST',
      `/api/v1/namespaces/${OTHER_NAMESPACE}/secrets`,
      { metadata: { name: 'x' } },
    ],
    ['delete a Secret in another namespace', 'DELETE', `/api/v1/namespaces/${OTHER_NAMESPACE}/secrets/bmc`],
    ['delete a namespace', 'DELETE', `/api/v1/namespaces/${OTHER_NAMESPACE}`],
    ['read another namespace', 'GET', `/api/v1/namespaces/${OTHER_NAMESPACE}`],
    ['list namespaces', 'GET', '/api/v1/namespaces'],
    ['create a namespace', 'POST', '/api/v1/namespaces', { metadata: { name: 'x' } }],
    ['list CRDs', 'GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions'],
    [
      'read a CRD',
      'GET',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/baremetalhosts.metalbox.io',
    ],
    [
      'delete a CRD',
      'DELETE',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/baremetalhosts.metalbox.io',
    ],
    [
      'create a CRD',
      'POST',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      { metadata: { name: 'x.example.com' } },
    ],
    [
      'delete a BareMetalHost (people do that)',
      'DELETE',
      `/apis/metalbox.io/v1alpha1/namespaces/${NS}/baremetalhosts/cp-01`,
    ],
    [
      'write a Lease in another namespace',
      'POST',
      `/apis/coordination.k8s.io/v1/namespaces/${OTHER_NAMESPACE}/leases`,
      { metadata: { name: 'x' } },
    ],
    [
      'delete its Lease',
      'DELETE',
      `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/metalbox-controller`,
    ],
    ['read ConfigMaps', 'GET', `/api/v1/namespaces/${NS}/configmaps`],
    ['create Pods', 'POST', `/api/v1/namespaces/${NS}/pods`, { metadata: { name: 'x' } }],
    ['change its own RBAC', 'DELETE', '/apis/rbac.authorization.k8s.io/v1/clusterroles/metalbox-controller'],
    ['change its own Deployment', 'DELETE', `/apis/apps/v1/namespaces/${NS}/deployments/metalbox-controller`],
  ];
  for (const [what, method, path, body] of forbidden) {
    it(`cannot ${what}`, async () => {
      assert.equal(await asController(method, path, body), 403);
    });
  }
});
