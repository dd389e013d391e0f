// The store conformance suite on a real etcd (Debian's etcd-server), each test under its own key
// prefix of one shared member, compacted for the Gone test and reopened for the restart test; and
// the etcd store's bookmarks.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Resource } from '../../../src/runtime/resource.ts';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { Gadget, Widget, type WidgetObject } from '../../conformance/kinds.ts';
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

test('a quiet watch gets bookmarks, and etcd progress notifications move them past writes to other kinds', async () => {
  const peer = await startEtcd({
    name: 'etcd-bookmarks',
    extraArgs: ['--experimental-watch-progress-notify-interval=500ms'],
  });
  const store = new EtcdStore({ hosts: [peer.endpoint], prefix: '/bookmarks', bookmarkIntervalMs: 200 });
  try {
    const { resourceVersion } = await store.list(Widget, { namespace: 'default' });
    const ac = new AbortController();
    const bookmarks: number[] = [];
    let lastOther = 0;
    for (let i = 0; i < 3; i++) {
      const g = await store.create<Resource>(Gadget, {
        apiVersion: `${Gadget.group}/${Gadget.version}`,
        kind: Gadget.kind,
        metadata: { name: `other-${i}` },
      });
      lastOther = Number(g.metadata.resourceVersion);
    }
    const deadline = Date.now() + 10_000;
    for await (const e of store.watch(Widget, { namespace: 'default', resourceVersion, signal: ac.signal })) {
      assert.equal(e.type, 'BOOKMARK', 'no widget changed');
      bookmarks.push(Number(e.resourceVersion));
      if (Number(e.resourceVersion) >= lastOther || Date.now() > deadline) break;
    }
    ac.abort();
    assert.ok(bookmarks.length > 0);
    assert.ok(bookmarks.every((rv) => rv >= Number(resourceVersion)));
    const latest = bookmarks.at(-1)!;
    assert.ok(latest >= lastOther, `bookmark ${latest} reached the other kind's write ${lastOther}`);
    // Resuming from the bookmark misses nothing that came after it.
    const resumed = new AbortController();
    const events = store.watch<WidgetObject>(Widget, {
      namespace: 'default',
      resourceVersion: String(latest),
      signal: resumed.signal,
    });
    const created = await store.create<WidgetObject>(Widget, {
      apiVersion: `${Widget.group}/${Widget.version}`,
      kind: Widget.kind,
      metadata: { namespace: 'default', name: 'after-bookmark' },
      spec: { size: 1 },
    });
    for await (const e of events) {
      if (e.type === 'BOOKMARK') continue;
      assert.equal(e.type, 'ADDED');
      assert.equal(e.object.metadata.resourceVersion, created.metadata.resourceVersion);
      break;
    }
    resumed.abort();
  } finally {
    await store.close();
    await peer.stop();
  }
});
