import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';

let etcd: EtcdPeer;
let client: Etcd3;
before(async () => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoint });
});
after(async () => {
  client?.close();
  await etcd?.stop();
});

test('etcd stores and returns a key', async () => {
  await client.put('metalbox/smoke').value('hello');
  assert.equal(await client.get('metalbox/smoke').string(), 'hello');
});

test('etcd is killed with its process group on stop', async () => {
  const other = await startEtcd({ name: 'etcd-short-lived' });
  const pid = other.process.pid;
  await other.stop();
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
});
