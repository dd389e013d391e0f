// The default Matchbox owner identity of an etcd store: the etcd cluster id and the key prefix,
// so two metalbox stores sharing one etcd under different prefixes never share it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openStore } from '../../../src/cli/store-flag.ts';
import { storeOwner } from '../../../src/cli/store-owner.ts';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';

let one: EtcdPeer;
let two: EtcdPeer;
before(async () => {
  [one, two] = await Promise.all([startEtcd({ name: 'etcd-owner-1' }), startEtcd({ name: 'etcd-owner-2' })]);
});
after(async () => {
  await Promise.all([one?.stop(), two?.stop()]);
});

async function ownerOf(endpoint: string, prefix: string): Promise<string> {
  const opened = await openStore({ type: 'etcd', endpoints: [endpoint], prefix });
  try {
    return await storeOwner(opened);
  } finally {
    await opened.close();
  }
}

test('one etcd and prefix give one owner; another prefix or another etcd cluster another', async () => {
  const a = await ownerOf(one.endpoint, '/metalbox');
  assert.match(a, /^etcd-[0-9a-f]{12}$/);
  assert.equal(await ownerOf(one.endpoint, '/metalbox'), a);
  const staging = await ownerOf(one.endpoint, '/metalbox-staging');
  const other = await ownerOf(two.endpoint, '/metalbox');
  assert.equal(new Set([a, staging, other]).size, 3);
});
