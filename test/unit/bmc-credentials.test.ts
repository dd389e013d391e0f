import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  credentialsFromSecret,
  type SecretLike,
  secretCredentialProvider,
} from '../../src/bmc/credentials.ts';
import { BmcCredentialsError } from '../../src/bmc/errors.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const secret = (rv: string, password: string): SecretLike => ({
  metadata: { name: 'bmc-cp-01', namespace: 'metal', resourceVersion: rv },
  data: { username: b64('admin'), password: b64(password) },
});

test('credentials are decoded from a Secret’s base64 data, without a trailing newline', () => {
  const creds = credentialsFromSecret(
    {
      metadata: { name: 's', resourceVersion: '7' },
      data: { username: b64('root'), password: b64('pa ss\n') },
    },
    'ipmi://10.0.0.1',
  );
  assert.deepEqual(creds, { username: 'root', password: 'pa ss', version: 's@7' });
});

test('stringData (as written in a manifest) is accepted too', () => {
  const creds = credentialsFromSecret({ stringData: { username: 'u', password: 'p4ss' } }, 'ipmi://h');
  assert.equal(creds.password, 'p4ss');
});

test('a Secret missing a key is an error naming the Secret and the key, not any value', () => {
  assert.throws(
    () =>
      credentialsFromSecret(
        { metadata: { name: 'bmc', namespace: 'ns' }, data: { username: b64('admin') } },
        'ipmi://h',
      ),
    (error: unknown) => {
      assert.ok(error instanceof BmcCredentialsError);
      assert.match(error.message, /Secret ns\/bmc has no "password" key/);
      assert.ok(!error.message.includes('admin'));
      return true;
    },
  );
  assert.throws(
    () => credentialsFromSecret({ data: { username: '%%%', password: b64('x') } }, 'ipmi://h'),
    /key "username" is not valid base64/,
  );
});

test('a changed Secret (new resourceVersion) is picked up by the next call, without a restart', async () => {
  let current = secret('1', 'old-password');
  let reads = 0;
  const provider = secretCredentialProvider(() => {
    reads++;
    return current;
  }, 'redfish://bmc');
  const first = await provider();
  assert.equal(first.password, 'old-password');
  assert.equal(await provider(), first, 'same resourceVersion: the decoded value is reused');
  current = secret('2', 'new-password');
  const second = await provider();
  assert.equal(second.password, 'new-password');
  assert.notEqual(second.version, first.version);
  assert.equal(reads, 3, 'the Secret is looked up on every call');
});

test('an edited Secret without a resourceVersion still gets a new version', async () => {
  const current: SecretLike = { stringData: { username: 'u', password: 'one' } };
  const provider = secretCredentialProvider(() => current, 'ipmi://h');
  const a = await provider();
  assert.equal((await provider()).version, a.version);
  current.stringData = { username: 'u', password: 'two' };
  const b = await provider();
  assert.equal(b.password, 'two');
  assert.notEqual(b.version, a.version);
});

test('a missing Secret is a credentials error naming it', async () => {
  const provider = secretCredentialProvider(() => undefined, 'ipmi://h', 'Secret metal/bmc-cp-01');
  await assert.rejects(async () => provider(), /Secret metal\/bmc-cp-01 not found/);
});
