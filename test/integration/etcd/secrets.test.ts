// Secrets in standalone mode: what reaches etcd is read back raw, so "no plaintext at rest" is
// checked where it matters, along with key rotation and the failures an operator can meet.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { isConflict } from '../../../src/runtime/errors.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { Keyring, SecretKind, type SecretObject, SecretStore } from '../../../src/stores/secrets.ts';
import { Widget } from '../../conformance/kinds.ts';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';

const PASSWORD = 'correct-horse-battery-staple';
let etcd: EtcdPeer;
let raw: Etcd3;
const stores: EtcdStore[] = [];
before(async () => {
  etcd = await startEtcd({ name: 'etcd-secrets' });
  raw = new Etcd3({ hosts: etcd.endpoint });
});
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  raw?.close();
  await etcd?.stop();
});

const key = (name: string) => ({ name, key: randomBytes(32) });
const k1 = key('k1');
const k2 = key('k2');

function open(prefix: string, keys?: { name: string; key: Buffer }[]) {
  const inner = new EtcdStore({ hosts: [etcd.endpoint], prefix });
  stores.push(inner);
  const store = new SecretStore(inner, {
    ...(keys ? { keyring: new Keyring(keys) } : {}),
    requireEncryption: true,
  });
  return { inner, store };
}

function bmcSecret(name: string): SecretObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { namespace: 'metalbox-system', name },
    type: 'Opaque',
    stringData: { username: 'admin', password: PASSWORD },
  };
}

async function rawValue(inner: EtcdStore, name: string): Promise<string> {
  const value = await raw.get(inner.keyOf(SecretKind, { namespace: 'metalbox-system', name })).string();
  assert.ok(value, 'the Secret is in etcd');
  return value;
}

const prefix = () => `/secrets-${randomBytes(3).toString('hex')}`;
const decode = (s: SecretObject, k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString('utf8');

test('Secret data reaches etcd only as AES-GCM ciphertext and reads back as a normal Secret', async () => {
  const { inner, store } = open(prefix(), [k1]);
  const created = await store.create<SecretObject>(SecretKind, bmcSecret('cp-01-bmc'));
  assert.equal(created.stringData, undefined, 'stringData is folded into data');
  assert.equal(decode(created, 'password'), PASSWORD);
  const stored = await rawValue(inner, 'cp-01-bmc');
  assert.ok(!stored.includes(PASSWORD), 'no plaintext password in etcd');
  assert.ok(!stored.includes(Buffer.from(PASSWORD).toString('base64')), 'no base64 password in etcd');
  assert.ok(!stored.includes('"data"'), 'no data field in etcd');
  assert.match(JSON.parse(stored).encryptedData, /^metalbox:enc:aes256gcm:v1:k1:/);
  const got = await store.get<SecretObject>(SecretKind, { namespace: 'metalbox-system', name: 'cp-01-bmc' });
  assert.equal(decode(got, 'username'), 'admin');
  assert.equal(decode(got, 'password'), PASSWORD);
  assert.equal(got.encryptedData, undefined);
  const listed = await store.list<SecretObject>(SecretKind, { namespace: 'metalbox-system' });
  assert.equal(decode(listed.items[0]!, 'password'), PASSWORD);
});

test('watches deliver Secrets decrypted', async () => {
  const { store } = open(prefix(), [k1]);
  const { resourceVersion } = await store.list(SecretKind, { namespace: 'metalbox-system' });
  const ac = new AbortController();
  const events = store.watch<SecretObject>(SecretKind, {
    namespace: 'metalbox-system',
    resourceVersion,
    signal: ac.signal,
  });
  await store.create(SecretKind, bmcSecret('watched'));
  for await (const e of events) {
    if (e.type === 'BOOKMARK') continue;
    assert.equal(e.type, 'ADDED');
    assert.equal(decode(e.object, 'password'), PASSWORD);
    break;
  }
  ac.abort();
});

test('an update that changes nothing keeps the resourceVersion; a changed value is sealed afresh', async () => {
  const { inner, store } = open(prefix(), [k1]);
  const created = await store.create<SecretObject>(SecretKind, bmcSecret('noop'));
  const before = await rawValue(inner, 'noop');
  const same = await store.update<SecretObject>(SecretKind, { ...created });
  assert.equal(same.metadata.resourceVersion, created.metadata.resourceVersion);
  assert.equal(await rawValue(inner, 'noop'), before);
  const changed = await store.update<SecretObject>(SecretKind, {
    ...same,
    data: { ...same.data, password: Buffer.from('new-password').toString('base64') },
  });
  assert.notEqual(changed.metadata.resourceVersion, created.metadata.resourceVersion);
  assert.equal(decode(changed, 'password'), 'new-password');
  await assert.rejects(store.update(SecretKind, { ...created }), isConflict);
});

test('rotation: with a new first key old Secrets still read, rewrites use the new key, then the old key can go', async () => {
  const p = prefix();
  const before = open(p, [k1]);
  await before.store.create(SecretKind, bmcSecret('rotated'));
  const during = open(p, [k2, k1]);
  const ref = { namespace: 'metalbox-system', name: 'rotated' };
  const old = await during.store.get<SecretObject>(SecretKind, ref);
  assert.equal(decode(old, 'password'), PASSWORD);
  // Re-applying the same Secret re-encrypts it under the new primary key.
  const rewritten = await during.store.update<SecretObject>(SecretKind, old);
  assert.notEqual(rewritten.metadata.resourceVersion, old.metadata.resourceVersion);
  assert.match(JSON.parse(await rawValue(during.inner, 'rotated')).encryptedData, /:v1:k2:/);
  const after = open(p, [k2]);
  assert.equal(decode(await after.store.get<SecretObject>(SecretKind, ref), 'password'), PASSWORD);
  const stale = open(p, [k1]);
  const err = await stale.store.get(SecretKind, ref).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  assert.match(err?.message ?? '', /encrypted with key "k2", which is not in the key file/);
  assert.ok(!err?.message.includes(PASSWORD));
});

test('without a key file no Secret is written to etcd, and other kinds are unaffected', async () => {
  const { inner, store } = open(prefix());
  await assert.rejects(store.create(SecretKind, bmcSecret('refused')), /no encryption key file was given/);
  const { kvs } = await raw.kv.range({
    key: Buffer.from(inner.keyOf(SecretKind, { namespace: 'metalbox-system', name: 'refused' })),
  });
  assert.equal(kvs.length, 0);
  const widget = await store.create<Resource>(Widget, {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'default', name: 'plain' },
    spec: { size: 1 },
  });
  assert.ok(widget.metadata.resourceVersion);
});

test('a ciphertext copied onto another Secret does not decrypt', async () => {
  const { inner, store } = open(prefix(), [k1]);
  await store.create(SecretKind, bmcSecret('victim'));
  await store.create(SecretKind, { ...bmcSecret('attacker'), stringData: { password: 'other' } });
  const stolen = JSON.parse(await rawValue(inner, 'victim')).encryptedData;
  const target = JSON.parse(await rawValue(inner, 'attacker'));
  await raw
    .put(inner.keyOf(SecretKind, { namespace: 'metalbox-system', name: 'attacker' }))
    .value(JSON.stringify({ ...target, encryptedData: stolen }));
  await assert.rejects(
    store.get(SecretKind, { namespace: 'metalbox-system', name: 'attacker' }),
    /could not be decrypted with key "k1"/,
  );
});
