import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KeyFileError, Keyring } from '../../src/stores/secrets.ts';

const b64 = (n = 32) => randomBytes(n).toString('base64');

test('a key file lists keys in order: the first encrypts, all decrypt', () => {
  const ring = Keyring.parse(
    `keys:\n  - name: k2\n    secret: ${b64()}\n  - name: k1\n    secret: ${b64()}\n`,
  );
  assert.equal(ring.primary.name, 'k2');
  assert.ok(ring.find('k1'));
  assert.equal(ring.find('k3'), undefined);
});

test('a key that is not 32 bytes of base64 is refused, naming the key but not its value', () => {
  const short = b64(16);
  const err = (() => {
    try {
      Keyring.parse(JSON.stringify({ keys: [{ name: 'short', secret: short }] }), 'keys.json');
    } catch (e) {
      return e as Error;
    }
  })();
  assert.ok(err instanceof KeyFileError);
  assert.match(err.message, /keys\.json: keys\[0\]\.secret \(key "short"\) must be 32 bytes/);
  assert.ok(!err.message.includes(short));
});

test('repeated key names, a missing list and unusable names are refused', () => {
  const s = b64();
  assert.throws(() => Keyring.parse(`keys: [{name: a, secret: ${s}}, {name: a, secret: ${s}}]`), /repeated/);
  assert.throws(() => Keyring.parse('keys: []'), /non-empty "keys" list/);
  assert.throws(() => Keyring.parse(`keys: [{name: "a:b", secret: ${s}}]`), /keys\[0\]\.name/);
});

test('a key file readable by group or others is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'metalbox-keys-'));
  try {
    const path = join(dir, 'keys.yaml');
    await writeFile(path, `keys: [{name: k1, secret: ${b64()}}]\n`);
    await chmod(path, 0o644);
    await assert.rejects(Keyring.fromFile(path), /readable by group or others \(mode 644\); run chmod 600/);
    await chmod(path, 0o600);
    assert.equal((await Keyring.fromFile(path)).primary.name, 'k1');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
