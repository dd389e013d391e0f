// The store conformance suite on a real kube-apiserver (and its etcd, compacted for the Gone test).
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import { KubeStore } from '../../../src/stores/kube.ts';
import { conformanceCrds } from '../../conformance/kinds.ts';
import { storeConformanceSuite } from '../../conformance/store-suite.ts';
import { type CrdLike, type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';

let kube: KubeApiserverPeer;
let etcd: Etcd3;
before(async () => {
  kube = await startKubeApiserver();
  await kube.installCRDs(conformanceCrds() as unknown as CrdLike[]);
  etcd = new Etcd3({ hosts: kube.etcd.endpoint });
});
after(async () => {
  etcd?.close();
  await kube?.stop();
});

storeConformanceSuite('kube store', async () => {
  const core = kube.kubeConfig().makeApiClient(CoreV1Api);
  const suffix = randomBytes(3).toString('hex');
  const [namespace, otherNamespace] = [`conf-${suffix}`, `conf-other-${suffix}`];
  for (const name of [namespace, otherNamespace])
    await core.createNamespace({ body: { metadata: { name } } });
  const open = () => new KubeStore({ kubeConfig: kube.kubeConfig(), fieldManager: 'metalbox-conformance' });
  let store = open();
  return {
    get store() {
      return store;
    },
    namespace,
    otherNamespace,
    compact: async () => {
      const { header } = await etcd.get('metalbox-compaction-probe').exec();
      await etcd.kv.compact({ revision: header.revision, physical: true });
    },
    reopen: async () => {
      await store.close();
      store = open();
      return store;
    },
    // No namespace controller runs, so namespaces are left behind; names are unique per test.
    cleanup: async () => store.close(),
  };
});
