// Each way an mTLS set-up goes wrong, produced with a real Matchbox and deliberately wrong
// certificates, yields its own error type and a message that says what to fix.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MatchboxClient } from '../../../src/matchbox/client.ts';
import {
  MatchboxClientCertRejectedError,
  MatchboxConfigError,
  MatchboxServerNameMismatchError,
  MatchboxTLSError,
  MatchboxUnknownCAError,
  MatchboxUnreachableError,
} from '../../../src/matchbox/errors.ts';
import { type MatchboxPeer, startMatchbox } from '../../env/matchbox.ts';
import { scratchDir } from '../../env/peers.ts';
import { type CertificateAuthority, createCA } from '../../env/pki.ts';

let peer: MatchboxPeer;
let wrongSanPeer: MatchboxPeer;
let otherCA: CertificateAuthority;
const scratch = scratchDir('matchbox-errors');

before(async () => {
  peer = await startMatchbox({ name: 'matchbox-errors' });
  otherCA = createCA(scratch.dir, 'other-ca');
  // Same CA, but the server certificate names only a DNS name, not the 127.0.0.1 clients dial.
  const wrongSan = peer.pki.ca.issue({
    name: 'wrong-san-server',
    commonName: 'matchbox.example.com',
    usage: 'server',
    subjectAltNames: ['DNS:matchbox.example.com'],
  });
  wrongSanPeer = await startMatchbox({
    name: 'matchbox-wrong-san',
    pki: { ca: peer.pki.ca, server: wrongSan, client: peer.pki.client },
  });
});
after(async () => {
  await Promise.all([peer?.destroy(), wrongSanPeer?.destroy()]);
  scratch.remove();
});

function clientFor(
  target: MatchboxPeer,
  tls: { ca?: string; cert?: string; key?: string } = {},
  timeoutMs = 5_000,
) {
  return new MatchboxClient({
    endpoint: target.rpcEndpoint,
    tls: { ca: target.pki.ca.cert, cert: target.pki.client.cert, key: target.pki.client.key, ...tls },
    timeoutMs,
  });
}

async function failure(client: MatchboxClient): Promise<Error> {
  try {
    await client.profileList();
  } catch (error) {
    return error as Error;
  } finally {
    client.close();
  }
  assert.fail('the call succeeded');
}

test('a correct set-up lists profiles', async () => {
  const client = clientFor(peer);
  assert.deepEqual(await client.profileList(), []);
  client.close();
});

test('a client certificate from another CA is reported as rejected by Matchbox, naming its issuer', async () => {
  const foreign = otherCA.issue({ name: 'foreign-client', commonName: 'metalbox-foreign', usage: 'client' });
  const error = await failure(clientFor(peer, { cert: foreign.cert, key: foreign.key }));
  assert.ok(error instanceof MatchboxClientCertRejectedError, String(error));
  assert.equal(error.alert, 'unknown ca');
  assert.match(
    error.message,
    new RegExp(`^Matchbox at ${peer.rpcEndpoint} rejected metalbox's client certificate`),
  );
  assert.match(error.message, /issued by "CN=other-ca"/);
  assert.match(
    error.message,
    /issue the client certificate from the CA Matchbox was started with \(-ca-file\)/,
  );
});

test('a client certificate without the clientAuth usage is rejected with that reason', async () => {
  const serverUsage = peer.pki.ca.issue({
    name: 'server-usage-client',
    commonName: 'not-a-client',
    usage: 'server',
    subjectAltNames: ['DNS:not-a-client'],
  });
  const error = await failure(clientFor(peer, { cert: serverUsage.cert, key: serverUsage.key }));
  assert.ok(error instanceof MatchboxClientCertRejectedError, String(error));
  assert.equal(error.alert, 'bad certificate');
  assert.match(error.message, /extended key usage is serverAuth, without clientAuth/);
});

test('a wrong CA on the client side is reported as an unknown CA, naming both CAs', async () => {
  const error = await failure(clientFor(peer, { ca: otherCA.cert }));
  assert.ok(error instanceof MatchboxUnknownCAError, String(error));
  assert.match(
    error.message,
    new RegExp(
      `^TLS handshake with Matchbox at ${peer.rpcEndpoint} failed: the server certificate is issued by "CN=matchbox-ca", ` +
        'which is not signed by the configured CA \\("CN=other-ca"\\)',
    ),
  );
  assert.match(
    error.message,
    /Set the client's CA \(ca\.crt\) to the CA that signed Matchbox's server certificate/,
  );
});

test('a server certificate that does not name the endpoint host is a SAN mismatch, listing what it names', async () => {
  const error = await failure(clientFor(wrongSanPeer));
  assert.ok(error instanceof MatchboxServerNameMismatchError, String(error));
  assert.equal(
    error.message,
    `TLS handshake with Matchbox at ${wrongSanPeer.rpcEndpoint} failed: the server certificate does not name ` +
      '127.0.0.1 (it names DNS:matchbox.example.com). Use an endpoint host the certificate lists, or re-issue ' +
      "Matchbox's server certificate with subjectAltName IP:127.0.0.1.",
  );
});

test('the HTTP port given as the gRPC endpoint is reported as not TLS', async () => {
  const client = new MatchboxClient({
    endpoint: peer.httpURL.replace('http://', ''),
    tls: { ca: peer.pki.ca.cert, cert: peer.pki.client.cert, key: peer.pki.client.key },
  });
  const error = await failure(client);
  assert.ok(error instanceof MatchboxTLSError, String(error));
  assert.match(
    error.message,
    /Is that Matchbox's HTTP port \(-address\) instead of its gRPC port \(-rpc-address\)\?/,
  );
});

test('a stopped server is unreachable (connection refused) and the error comes at once', async () => {
  const down = await startMatchbox({ name: 'matchbox-down', pki: peer.pki });
  await down.stop();
  const started = Date.now();
  const error = await failure(clientFor(down, {}, 20_000));
  await down.destroy();
  assert.ok(error instanceof MatchboxUnreachableError, String(error));
  assert.equal(error.failure, 'refused');
  assert.match(
    error.message,
    new RegExp(`^Matchbox at ${down.rpcEndpoint} is unreachable: connection refused`),
  );
  assert.ok(Date.now() - started < 10_000, 'a refused connection does not wait for the deadline');
});

test('a hung server (process stopped) is unreachable after the deadline, not a hang', async () => {
  const hung = await startMatchbox({ name: 'matchbox-hung', pki: peer.pki });
  process.kill(hung.process().pid, 'SIGSTOP');
  try {
    const started = Date.now();
    const error = await failure(clientFor(hung, {}, 1_500));
    assert.ok(error instanceof MatchboxUnreachableError, String(error));
    assert.equal(error.failure, 'timeout');
    assert.match(
      error.message,
      new RegExp(`^Matchbox at ${hung.rpcEndpoint} is unreachable: no answer within 1.5s`),
    );
    assert.ok(Date.now() - started < 15_000, 'the deadline ends the call');
  } finally {
    process.kill(hung.process().pid, 'SIGCONT');
    await hung.destroy();
  }
});

test('an unresolvable host is unreachable, naming the host', async () => {
  const client = new MatchboxClient({
    endpoint: 'matchbox.invalid:8081',
    tls: { ca: peer.pki.ca.cert, cert: peer.pki.client.cert, key: peer.pki.client.key },
  });
  const error = await failure(client);
  assert.ok(error instanceof MatchboxUnreachableError, String(error));
  assert.equal(
    error.message,
    'Matchbox at matchbox.invalid:8081 is unreachable: host name "matchbox.invalid" does not resolve.',
  );
});

test('a key that does not belong to the client certificate fails before any dial', () => {
  const foreign = otherCA.issue({ name: 'foreign-key', commonName: 'x', usage: 'client' });
  assert.throws(
    () => clientFor(peer, { key: foreign.key }),
    (error: unknown) =>
      error instanceof MatchboxConfigError &&
      error.field === 'key' &&
      /does not belong to the client certificate \(CN=metalbox\)/.test(error.message),
  );
  assert.throws(() => clientFor(peer, { ca: 'not a pem' }), /Matchbox client ca is not a PEM certificate/);
});
