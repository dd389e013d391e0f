// Lease-based leader election against a real kube-apiserver. The "partition" is a TCP relay between
// one elector and the apiserver that the test can cut: a network failure no real peer can be told
// to produce on demand.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { LeaseElector } from '../../../src/stores/kube-leader.ts';
import { type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { waitFor } from '../../env/wait.ts';

let kube: KubeApiserverPeer;
const running: LeaseElector[] = [];
const namespace = 'leader-test';
before(async () => {
  kube = await startKubeApiserver();
  await kube
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: namespace } } });
});
after(async () => {
  await Promise.all(running.map((e) => e.stop()));
  await kube?.stop();
});

function elector(
  name: string,
  identity: string,
  kubeConfig = kube.kubeConfig(),
  timing: { leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number } = {},
) {
  const transitions: { leading: boolean; at: number }[] = [];
  const e = new LeaseElector({
    kubeConfig,
    namespace,
    name,
    identity,
    ...timing,
    onChange: (leading) => transitions.push({ leading, at: Date.now() }),
  });
  running.push(e);
  let stoppedReason: string | undefined;
  const done = e.run(
    () => {},
    (reason) => {
      stoppedReason = reason;
    },
  );
  return { e, transitions, done, stoppedReason: () => stoppedReason };
}

test('one of two electors leads; when it stops renewing the other takes over within 20 s', async () => {
  const a = elector('failover', 'replica-a');
  await waitFor(async () => a.e.leading, { what: 'a leads', timeoutMs: 10_000 });
  const b = elector('failover', 'replica-b');
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(b.e.leading, false, 'b must not lead while a renews');
  // Crash: a stops renewing without releasing (as SIGKILL would).
  const crashedAt = Date.now();
  await a.e.stop();
  await waitFor(async () => b.e.leading, { what: 'b leads', timeoutMs: 25_000, intervalMs: 200 });
  const takeover = Date.now() - crashedAt;
  assert.ok(takeover < 20_000, `takeover took ${takeover} ms`);
  const lease = await kube
    .kubeConfig()
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ namespace, name: 'failover' });
  assert.equal(lease.spec?.holderIdentity, 'replica-b');
  assert.equal(lease.spec?.leaseTransitions, 1);
  await b.e.stop({ release: true });
  await Promise.all([a.done, b.done]);
});

test('a leader keeps renewing its lease well past the renew deadline', async () => {
  // Short timings: five renew deadlines in 10 s. The renewal re-reads the Lease the apiserver
  // returned (acquireTime comes back as a string), so a renewal that cannot handle that loses here.
  const a = elector('hold', 'replica-a', kube.kubeConfig(), {
    leaseDurationMs: 3000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 500,
  });
  await waitFor(async () => a.e.leading, { what: 'a leads', timeoutMs: 10_000 });
  const api = kube.kubeConfig().makeApiClient(CoordinationV1Api);
  const first = await api.readNamespacedLease({ namespace, name: 'hold' });
  await new Promise((r) => setTimeout(r, 10_000));
  const later = await api.readNamespacedLease({ namespace, name: 'hold' });
  assert.equal(a.e.leading, true, `a lost the lease: ${a.stoppedReason()}`);
  assert.deepEqual(
    a.transitions.map((t) => t.leading),
    [true],
  );
  assert.equal(later.spec?.holderIdentity, 'replica-a');
  assert.equal(later.spec?.leaseTransitions, 0);
  assert.equal(String(later.spec?.acquireTime), String(first.spec?.acquireTime));
  assert.ok(
    Date.parse(String(later.spec?.renewTime)) - Date.parse(String(first.spec?.renewTime)) >= 8000,
    `renewTime did not advance: ${first.spec?.renewTime} -> ${later.spec?.renewTime}`,
  );
  await a.e.stop({ release: true });
  await a.done;
});

test('a released lease is taken over at once', async () => {
  const a = elector('release', 'replica-a');
  await waitFor(async () => a.e.leading, { what: 'a leads', timeoutMs: 10_000 });
  const b = elector('release', 'replica-b');
  const releasedAt = Date.now();
  await a.e.stop({ release: true });
  await waitFor(async () => b.e.leading, { what: 'b leads', timeoutMs: 10_000, intervalMs: 100 });
  assert.ok(Date.now() - releasedAt < 6_000);
  await b.e.stop({ release: true });
  await Promise.all([a.done, b.done]);
});

test('a partitioned leader stops leading before the other starts', async () => {
  // A relay the test can cut, between replica-a and the apiserver.
  const target = new URL(kube.url);
  const sockets = new Set<Socket>();
  let cut = false;
  const relay: Server = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const port = (relay.address() as { port: number }).port;
  const viaRelay = new KubeConfig();
  viaRelay.loadFromString(kube.kubeConfig().exportConfig().replace(kube.url, `https://127.0.0.1:${port}`));

  const a = elector('partition', 'replica-a', viaRelay);
  await waitFor(async () => a.e.leading, { what: 'a leads', timeoutMs: 10_000 });
  const b = elector('partition', 'replica-b');
  cut = true;
  for (const s of sockets) s.destroy();
  await waitFor(async () => b.e.leading, { what: 'b leads', timeoutMs: 30_000, intervalMs: 100 });
  const aStopped = a.transitions.find((t) => !t.leading);
  const bStarted = b.transitions.find((t) => t.leading);
  assert.ok(aStopped, 'the partitioned leader gave up leadership');
  assert.ok(bStarted);
  assert.ok(aStopped.at < bStarted.at, 'no overlap: a stopped before b started');
  assert.match(a.stoppedReason() ?? '', /could not renew/);
  await b.e.stop({ release: true });
  await Promise.all([a.done, b.done]);
  relay.close();
});
