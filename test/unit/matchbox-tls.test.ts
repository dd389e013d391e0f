import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MatchboxConfigError } from '../../src/matchbox/errors.ts';
import { checkTLS, loadTLSFromFiles, loadTLSFromSecret } from '../../src/matchbox/tls.ts';
import { scratchDir } from '../env/peers.ts';
import { createCA } from '../env/pki.ts';

const scratch = scratchDir('matchbox-tls');
after(() => scratch.remove());
const ca = createCA(scratch.dir, 'matchbox-ca');
const client = ca.issue({ name: 'client', commonName: 'metalbox', usage: 'client' });
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('credentials load from files and from a Secret with ca.crt, tls.crt, tls.key', () => {
  const fromFiles = loadTLSFromFiles({
    caFile: ca.certFile,
    certFile: client.certFile,
    keyFile: client.keyFile,
  });
  assert.deepEqual(fromFiles, { ca: ca.cert, cert: client.cert, key: client.key });
  const fromSecret = loadTLSFromSecret({
    metadata: { name: 'matchbox-client', namespace: 'metalbox-system' },
    data: { 'ca.crt': b64(ca.cert), 'tls.crt': b64(client.cert), 'tls.key': b64(client.key) },
  });
  assert.deepEqual(fromSecret, fromFiles);
});

test('missing credentials name the file or Secret key', () => {
  assert.throws(
    () =>
      loadTLSFromFiles({ caFile: '/nonexistent/ca.crt', certFile: client.certFile, keyFile: client.keyFile }),
    (e: unknown) =>
      e instanceof MatchboxConfigError &&
      e.message === 'Matchbox client caFile cannot read /nonexistent/ca.crt: ENOENT',
  );
  assert.throws(
    () =>
      loadTLSFromSecret({
        metadata: { name: 'mbx', namespace: 'ns' },
        data: { 'ca.crt': b64(ca.cert), 'tls.crt': b64(client.cert) },
      }),
    (e: unknown) =>
      e instanceof MatchboxConfigError &&
      e.message === 'Matchbox client Secret ns/mbx data.tls.key is missing',
  );
});

test('checked credentials describe the certificates without their contents', () => {
  const checked = checkTLS({ ca: ca.cert, cert: client.cert, key: client.key });
  assert.equal(checked.clientSummary.subject, 'CN=metalbox');
  assert.equal(checked.clientSummary.issuer, 'CN=matchbox-ca');
  assert.deepEqual(checked.clientSummary.extendedKeyUsage, ['clientAuth']);
  assert.equal(checked.caSummary.subject, 'CN=matchbox-ca');
  assert.ok(!JSON.stringify({ ...checked.clientSummary, ...checked.caSummary }).includes('BEGIN'));
  assert.throws(
    () => checkTLS({ ca: ca.cert, cert: client.cert, key: 'garbage' }),
    /Matchbox client key is not a PEM private key/,
  );
});
