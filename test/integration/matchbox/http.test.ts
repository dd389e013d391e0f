// Reading what a real Matchbox answers a booting machine, and checking it against a profile.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MatchboxClient } from '../../../src/matchbox/client.ts';
import {
  fetchBootIpxe,
  fetchIpxe,
  MatchboxHttpError,
  renderIpxe,
  verifyBootAnswer,
} from '../../../src/matchbox/http.ts';
import type { NetBoot } from '../../../src/matchbox/objects.ts';
import { type MatchboxPeer, startMatchbox } from '../../env/matchbox.ts';

let peer: MatchboxPeer;
let client: MatchboxClient;
const boot: NetBoot = {
  kernel: '/assets/vmlinuz',
  initrd: ['/assets/initramfs.xz'],
  args: [
    'initrd=initramfs.xz',
    'talos.platform=metal',
    'talos.config=http://10.0.20.5:8080/assets/controlplane.yaml',
  ],
};

before(async () => {
  peer = await startMatchbox({ name: 'matchbox-http' });
  client = new MatchboxClient({
    endpoint: peer.rpcEndpoint,
    tls: { ca: peer.pki.ca.cert, cert: peer.pki.client.cert, key: peer.pki.client.key },
  });
  await client.profilePut({ id: 'metal.cp', boot });
  await client.groupPut({
    id: 'metal.cp-01',
    profile: 'metal.cp',
    selector: { mac: 'aa:bb:cc:dd:ee:01' },
    metadata: {},
  });
});
after(async () => {
  client?.close();
  await peer?.destroy();
});

test('/ipxe?mac= is read and parsed into the profile it boots, for any MAC spelling', async () => {
  for (const mac of ['aa:bb:cc:dd:ee:01', 'AA-BB-CC-DD-EE-01']) {
    const answer = await fetchIpxe(peer.httpURL, mac);
    assert.equal(answer.status, 200);
    assert.equal(answer.body, renderIpxe(boot));
    assert.deepEqual(answer.boot, boot);
  }
});

test('a matching answer verifies; a changed profile yields a readable diff', async () => {
  const ok = await verifyBootAnswer(peer.httpURL, 'aa:bb:cc:dd:ee:01', boot);
  assert.deepEqual([ok.ok, ok.diff], [true, []]);
  const expected = {
    ...boot,
    args: [...boot.args.slice(0, 2), 'talos.config=http://10.0.20.5:8080/assets/worker.yaml'],
  };
  const drifted = await verifyBootAnswer(peer.httpURL, 'aa:bb:cc:dd:ee:01', expected);
  assert.equal(drifted.ok, false);
  assert.deepEqual(drifted.diff, [
    'args missing: talos.config=http://10.0.20.5:8080/assets/worker.yaml',
    'args unexpected: talos.config=http://10.0.20.5:8080/assets/controlplane.yaml',
  ]);
});

test('a MAC no group matches is a 404 reported as such', async () => {
  const result = await verifyBootAnswer(peer.httpURL, 'aa:bb:cc:dd:ee:99', boot);
  assert.equal(result.ok, false);
  assert.equal(result.answer.status, 404);
  assert.deepEqual(result.diff, ['no group matches mac=aa:bb:cc:dd:ee:99 (404)']);
});

test('/boot.ipxe is the chain script', async () => {
  const script = await fetchBootIpxe(peer.httpURL);
  assert.match(script, /^#!ipxe\nchain ipxe\?uuid=\$\{uuid\}&mac=\$\{mac:hexhyp\}/);
});

test('an HTTP endpoint that is down is an error naming the URL', async () => {
  const down = await startMatchbox({ name: 'matchbox-http-down', pki: peer.pki });
  await down.stop();
  await assert.rejects(fetchIpxe(down.httpURL, 'aa:bb:cc:dd:ee:01'), (error: unknown) => {
    assert.ok(error instanceof MatchboxHttpError);
    assert.equal(
      error.message,
      `Matchbox HTTP API at ${down.httpURL}/ipxe?mac=aa%3Abb%3Acc%3Add%3Aee%3A01 did not answer: connection refused (is matchbox running and listening on -address?)`,
    );
    return true;
  });
  await down.destroy();
});
