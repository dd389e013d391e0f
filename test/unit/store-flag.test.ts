import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import {
  describeStore,
  openStore,
  parseStoreFlag,
  StoreFlagError,
  storeSpecFrom,
} from '../../src/cli/store-flag.ts';

test('etcd://host:port,host:port/prefix names every member and the key prefix', () => {
  assert.deepEqual(parseStoreFlag('etcd://10.0.20.11:2379,10.0.20.12:2379,witness:2379/metalbox-prod'), {
    type: 'etcd',
    endpoints: ['10.0.20.11:2379', '10.0.20.12:2379', 'witness:2379'],
    prefix: '/metalbox-prod',
  });
});

test('an etcd host without a port gets 2379 and the prefix defaults to /metalbox', () => {
  assert.deepEqual(parseStoreFlag('etcd://mgmt-01,[fd00::1]:2380'), {
    type: 'etcd',
    endpoints: ['mgmt-01:2379', '[fd00::1]:2380'],
    prefix: '/metalbox',
  });
});

test('file:<dir> and kube[:<kubeconfig>] are accepted; paths become absolute', () => {
  assert.deepEqual(parseStoreFlag('file:data'), { type: 'file', dir: resolve('data') });
  assert.deepEqual(parseStoreFlag('kube'), { type: 'kube' });
  assert.deepEqual(parseStoreFlag('kube:cfg'), { type: 'kube', kubeconfig: resolve('cfg') });
  assert.equal(describeStore(parseStoreFlag('etcd://a:1,b:2/x')), 'etcd://a:1,b:2/x');
});

test('malformed store values are refused naming --store', () => {
  for (const bad of [
    'etcd://',
    'etcd://a:99999',
    'etcd://a b:1',
    'etcd://a:1/bad prefix',
    'file:',
    'mysql://x',
    '',
  ]) {
    assert.throws(
      () => parseStoreFlag(bad),
      (e: unknown) => e instanceof StoreFlagError && /--store/.test(e.message),
      bad,
    );
  }
});

test('the store comes from --store, else $METALBOX_STORE, else it is an error', () => {
  assert.deepEqual(storeSpecFrom({ store: 'kube' }, { METALBOX_STORE: 'file:/x' }), { type: 'kube' });
  assert.deepEqual(storeSpecFrom({}, { METALBOX_STORE: 'file:/x' }), { type: 'file', dir: '/x' });
  assert.throws(() => storeSpecFrom({}, {}), /--store is required/);
});

test('etcd flags on another store and a user without a password are refused before connecting', async () => {
  await assert.rejects(
    openStore({ type: 'file', dir: '/nonexistent' }, { 'etcd-user': 'root' }),
    /--etcd-user applies only to --store etcd/,
  );
  await assert.rejects(
    openStore(
      { type: 'etcd', endpoints: ['127.0.0.1:1'], prefix: '/m' },
      { 'etcd-user': 'root' },
      { env: {} },
    ),
    /--etcd-user needs --etcd-password-file or \$METALBOX_ETCD_PASSWORD/,
  );
  await assert.rejects(
    openStore({ type: 'kube' }, { 'encryption-key-file': '/k' }),
    /does not apply to --store kube/,
  );
});
