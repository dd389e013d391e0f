import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';

let kube: KubeApiserverPeer;
before(async () => {
  kube = await startKubeApiserver();
});
after(async () => {
  await kube?.stop();
});

test('the admin token creates and reads a namespace through client-node', async () => {
  const core = kube.kubeConfig('admin').makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'smoke' } } });
  const ns = await core.readNamespace({ name: 'smoke' });
  assert.equal(ns.metadata?.name, 'smoke');
});

test('the restricted token is forbidden by RBAC', async () => {
  const core = kube.kubeConfig('restricted').makeApiClient(CoreV1Api);
  await assert.rejects(core.listNamespace(), (error: { code?: number }) => {
    assert.equal(error.code, 403);
    return true;
  });
});

test('CRDs are installed and listed by discovery', async () => {
  await kube.installCRDs([
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.smoke.metalbox.io' },
      spec: {
        group: 'smoke.metalbox.io',
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    },
  ]);
  const res = await kube.request('GET', '/apis/smoke.metalbox.io/v1');
  assert.equal(res.status, 200);
  assert.ok(JSON.stringify(res.body).includes('"widgets"'));
});
