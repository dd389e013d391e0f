// The store conformance suite on a real etcd (Debian's etcd-server), each test under its own key
// prefix of one shared member, compacted for the Gone test and reopened for the restart test.
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { storeConformanceSuite } from '../../conformance/store-suite.ts';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';

let etcd: EtcdPeer;
before(async () => {
  etcd = await startEtcd({ name: 'etcd-conformance' });
});
after(async () => {
  await etcd?.stop();
});

storeConformanceSuite('etcd store', async () => {
  const prefix = `/conformance-${randomBytes(4).toString('hex')}`;
  const open = () => new EtcdStore({ hosts: [etcd.endpoint], prefix });
  let store = open();
  return {
    get store() {
      return store;
    },
    namespace: 'default',
    otherNamespace: 'other',
    compact: () => store.compact(),
    reopen: async () => {
      await store.close();
      store = open();
      return store;
    },
    cleanup: () => store.close(),
  };
});
