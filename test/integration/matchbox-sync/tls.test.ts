// mTLS set-up mistakes, made with real Matchbox servers and deliberately wrong certificates: each
// endpoint's status and the controller's log carry the specific message for its mistake, the
// correctly configured endpoint keeps syncing, and the failing ones are retried with growing
// backoff instead of a crash loop.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ProfileKind, type ProfileObject } from '../../../src/controllers/matchbox/kinds.ts';
import { SecretKind } from '../../../src/controllers/matchbox/secrets.ts';
import { fetchIpxe } from '../../../src/matchbox/http.ts';
import { type MatchboxPeer, startMatchbox, startMatchboxPair } from '../../env/matchbox.ts';
import { scratchDir } from '../../env/peers.ts';
import { type CertificateAuthority, createCA } from '../../env/pki.ts';
import { waitFor } from '../../env/wait.ts';
import {
  apply,
  condition,
  credentialsSecret,
  endpointEntry,
  getOrUndefined,
  metricValue,
  NAMESPACE,
  type Pair,
  type StoreBackend,
  type SyncWorld,
  seedManifests,
  startKubeBackend,
  startSync,
} from './world.ts';

let backend: StoreBackend;
let pair: Pair;
let third: MatchboxPeer;
let wrongSan: MatchboxPeer;
let otherCA: CertificateAuthority;
let world: SyncWorld;
const scratch = scratchDir('matchbox-sync-tls');

before(async () => {
  [backend, pair] = await Promise.all([startKubeBackend(), startMatchboxPair()]);
  otherCA = createCA(scratch.dir, 'other-ca');
  third = await startMatchbox({ name: 'matchbox-third', pki: pair.pki });
  // Same CA, but the server certificate names only a DNS name, not the 127.0.0.1 dialled.
  const wrongSanCert = pair.pki.ca.issue({
    name: 'wrong-san-server',
    commonName: 'matchbox.example.com',
    usage: 'server',
    subjectAltNames: ['DNS:matchbox.example.com'],
  });
  wrongSan = await startMatchbox({
    name: 'matchbox-wrong-san',
    pki: { ca: pair.pki.ca, server: wrongSanCert, client: pair.pki.client },
  });
  const foreign = otherCA.issue({ name: 'foreign-client', commonName: 'metalbox-foreign', usage: 'client' });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  await backend.store.create(SecretKind, credentialsSecret(pair));
  await backend.store.create(SecretKind, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'foreign-client', namespace: NAMESPACE },
    data: { 'ca.crt': b64(pair.pki.ca.cert), 'tls.crt': b64(foreign.cert), 'tls.key': b64(foreign.key) },
  });
  const files = {
    caFile: pair.pki.ca.certFile,
    certFile: pair.pki.client.certFile,
    keyFile: pair.pki.client.keyFile,
  };
  world = await startSync(backend.store, {
    endpoints: [
      {
        name: 'good',
        endpoint: pair.a.rpcEndpoint,
        httpURL: pair.a.httpURL,
        tls: { secretRef: { namespace: NAMESPACE, name: 'matchbox-client' } },
        timeoutSeconds: 5,
      },
      {
        name: 'bad-client',
        endpoint: pair.b.rpcEndpoint,
        tls: { secretRef: { namespace: NAMESPACE, name: 'foreign-client' } },
        timeoutSeconds: 5,
      },
      {
        name: 'wrong-ca',
        endpoint: third.rpcEndpoint,
        tls: { ...files, caFile: otherCA.certFile },
        timeoutSeconds: 5,
      },
      { name: 'wrong-san', endpoint: wrongSan.rpcEndpoint, tls: files, timeoutSeconds: 5 },
      {
        name: 'no-secret',
        endpoint: '127.0.0.1:1',
        tls: { secretRef: { namespace: NAMESPACE, name: 'absent' } },
        timeoutSeconds: 5,
      },
    ],
    driftScanIntervalSeconds: 3600,
  });
  await apply(backend.store, seedManifests());
});
after(async () => {
  await world?.stop();
  await Promise.all([pair?.destroy(), third?.destroy(), wrongSan?.destroy(), backend?.close()]);
  scratch.remove();
});

const profile = () => getOrUndefined<ProfileObject>(backend.store, ProfileKind, 'talos-control-plane');

const EXPECTED = () => ({
  'bad-client': [
    pair.b.rpcEndpoint,
    `Matchbox at ${pair.b.rpcEndpoint} rejected metalbox's client certificate (subject "CN=metalbox-foreign", ` +
      `issued by "CN=other-ca"): TLS alert "unknown ca". Matchbox does not trust the CA that signed it: issue the ` +
      'client certificate from the CA Matchbox was started with (-ca-file).',
  ],
  'wrong-ca': [
    third.rpcEndpoint,
    new RegExp(
      `^TLS handshake with Matchbox at ${third.rpcEndpoint} failed: the server certificate is issued by "CN=matchbox-ca", ` +
        'which is not signed by the configured CA \\("CN=other-ca"\\) \\(.+\\)\\. Set the client\'s CA \\(ca\\.crt\\) to the CA ' +
        "that signed Matchbox's server certificate\\.$",
    ),
  ],
  'wrong-san': [
    wrongSan.rpcEndpoint,
    `TLS handshake with Matchbox at ${wrongSan.rpcEndpoint} failed: the server certificate does not name 127.0.0.1 ` +
      '(it names DNS:matchbox.example.com). Use an endpoint host the certificate lists, or re-issue ' +
      "Matchbox's server certificate with subjectAltName IP:127.0.0.1.",
  ],
  'no-secret': [
    '127.0.0.1:1',
    `Matchbox client tls.secretRef for 127.0.0.1:1 is unusable: Secret ${NAMESPACE}/absent does not exist`,
  ],
});

test('each mTLS mistake is in the endpoint status with its own message, and the good endpoint is synced', async () => {
  await waitFor(async () => (await profile())?.status?.endpoints?.every((e) => e.synced || e.lastError), {
    what: 'every endpoint of talos-control-plane attempted',
  });
  const obj = (await profile())!;
  assert.deepEqual(
    { ...endpointEntry(obj, pair.a.rpcEndpoint), lastSyncTime: undefined },
    { endpoint: pair.a.rpcEndpoint, observedGeneration: 1, synced: true, lastSyncTime: undefined },
  );
  for (const [name, [address, message]] of Object.entries(EXPECTED())) {
    const entry = endpointEntry(obj, address as string);
    assert.equal(entry?.synced, false, name);
    if (message instanceof RegExp) assert.match(entry!.lastError!, message, name);
    else assert.equal(entry?.lastError, message, name);
  }
  const synced = condition(obj, 'Synced')!;
  assert.equal(synced.status, 'False');
  assert.equal(synced.reason, 'SyncFailed');
  assert.match(synced.message, /^generation 1 is not on 4 of 5 Matchbox endpoints: bad-client \(/);

  // The good endpoint serves the seed once the group sync (a controller of its own) has written it.
  await waitFor(async () => (await fetchIpxe(pair.a.httpURL, 'aa:bb:cc:dd:ee:01')).status === 200, {
    what: 'the good endpoint answering the seed MAC',
  });
  assert.equal(await metricValue(world.registry, 'metalbox_matchbox_endpoint_up', { endpoint: 'good' }), 1);
  for (const name of ['bad-client', 'wrong-ca', 'wrong-san', 'no-secret']) {
    assert.equal(
      await metricValue(world.registry, 'metalbox_matchbox_endpoint_up', { endpoint: name }),
      0,
      name,
    );
  }
});

test('the log says the same, and failing reconciles back off instead of looping', async () => {
  const failuresOf = () =>
    world.logs.entries.filter(
      (e) =>
        e.msg === 'reconcile failed' &&
        e.fields.controller === 'matchboxprofile-sync' &&
        e.fields.key === `${NAMESPACE}/talos-control-plane`,
    );
  await waitFor(async () => failuresOf().length >= 3, { what: 'three failed attempts', timeoutMs: 30_000 });
  const logged = JSON.stringify(failuresOf()[0]!.fields);
  for (const [, message] of Object.values(EXPECTED())) {
    const text =
      message instanceof RegExp ? message.source.slice(1, 60).replace(/\\/g, '') : (message as string);
    assert.ok(logged.includes(JSON.stringify(text).slice(1, -1)), `log lacks ${text}`);
  }
  // Backoff: each retry waits longer than the one before.
  const delays = failuresOf().map((e) => e.fields.retryInMs as number);
  const counts = failuresOf().map((e) => e.fields.failures as number);
  assert.deepEqual(counts.slice(0, 3), [1, 2, 3]);
  assert.ok(delays[2]! > delays[0]!, `retry delays ${delays.join(', ')} do not grow`);
  // So far the key was tried only a handful of times, and the manager still runs.
  assert.ok(failuresOf().length <= 6, `${failuresOf().length} attempts`);
  assert.equal(world.manager.leading, true);
  assert.equal(
    world.logs.entries.filter((e) => e.level === 'error').length,
    0,
    world.logs.entries
      .filter((e) => e.level === 'error')
      .map((e) => e.msg)
      .join('\n'),
  );
});
