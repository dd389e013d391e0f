// One Matchbox of the pair goes down while the fleet changes, and comes back rebuilt with an
// empty data dir (the backup node after a reinstall): the other endpoint keeps syncing, status
// says which endpoint is unhealthy and why, and the rebuilt one is refilled without user action.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  GroupKind,
  type GroupObject,
  ProfileKind,
  type ProfileObject,
} from '../../../src/controllers/matchbox/kinds.ts';
import { SecretKind } from '../../../src/controllers/matchbox/secrets.ts';
import type { MatchboxClient } from '../../../src/matchbox/client.ts';
import { MatchboxNotFoundError } from '../../../src/matchbox/errors.ts';
import { fetchIpxe } from '../../../src/matchbox/http.ts';
import { startMatchboxPair } from '../../env/matchbox.ts';
import { waitFor } from '../../env/wait.ts';
import {
  apply,
  clientFor,
  condition,
  credentialsSecret,
  endpointEntry,
  getOrUndefined,
  metricValue,
  NAMESPACE,
  type Pair,
  pairConfig,
  type StoreBackend,
  type SyncWorld,
  seedManifests,
  startKubeBackend,
  startSync,
  update,
  waitAllSynced,
} from './world.ts';

let backend: StoreBackend;
let pair: Pair;
let world: SyncWorld;
let a: MatchboxClient;
let b: MatchboxClient;

before(async () => {
  [backend, pair] = await Promise.all([startKubeBackend(), startMatchboxPair()]);
  a = clientFor(pair, pair.a);
  b = clientFor(pair, pair.b);
  await backend.store.create(SecretKind, credentialsSecret(pair));
  world = await startSync(backend.store, pairConfig(pair, { driftScanIntervalSeconds: 2 }));
  await apply(backend.store, seedManifests());
  await waitAllSynced(backend.store);
});
after(async () => {
  await world?.stop();
  a?.close();
  b?.close();
  await Promise.all([pair?.destroy(), backend?.close()]);
});

const WORKER_ARGS_V2 = [
  'initrd=initramfs.xz',
  'talos.platform=metal',
  'talos.config=http://10.0.20.5:8080/assets/worker-v2.yaml',
];
const ownedIds = async (c: MatchboxClient) => ({
  profiles: (await c.profileList()).map((p) => p.id).sort(),
  groups: (await c.groupList()).map((g) => g.id).sort(),
});

test('with one endpoint down the other keeps syncing and status names the unhealthy endpoint', async () => {
  await pair.b.stop();
  await update<ProfileObject>(backend.store, ProfileKind, 'talos-worker', (p) => {
    p.spec.args = WORKER_ARGS_V2;
  });
  await apply(backend.store, [
    {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxGroup',
      metadata: { name: 'talos-worker-03', namespace: NAMESPACE },
      spec: { profileRef: { name: 'talos-worker' }, selector: { mac: 'aa:bb:cc:dd:ee:13' } },
    } as never,
  ]);
  await backend.store.delete(GroupKind, { namespace: NAMESPACE, name: 'talos-cp-02' });

  const worker = () => getOrUndefined<ProfileObject>(backend.store, ProfileKind, 'talos-worker');
  await waitFor(async () => endpointEntry(await worker(), pair.b.rpcEndpoint)?.lastError !== undefined, {
    what: 'the failed write to b in talos-worker status',
  });
  const profile = (await worker())!;
  assert.deepEqual(
    { ...endpointEntry(profile, pair.a.rpcEndpoint), lastSyncTime: undefined },
    { endpoint: pair.a.rpcEndpoint, observedGeneration: 2, synced: true, lastSyncTime: undefined },
  );
  const bEntry = endpointEntry(profile, pair.b.rpcEndpoint)!;
  assert.equal(bEntry.synced, false);
  assert.equal(bEntry.observedGeneration, 1);
  assert.match(
    bEntry.lastError!,
    new RegExp(`^Matchbox at ${pair.b.rpcEndpoint} is unreachable: connection refused`),
  );
  const synced = condition(profile, 'Synced')!;
  assert.equal(synced.status, 'False');
  assert.equal(synced.reason, 'Unreachable');
  assert.match(
    synced.message,
    new RegExp(
      `^generation 2 is not on 1 of 2 Matchbox endpoints: b \\(${pair.b.rpcEndpoint}\\): Matchbox at`,
    ),
  );

  // Endpoint a has every change (groups sync in their own controller: wait for them).
  assert.deepEqual((await a.profileGet('metalbox-system.talos-worker')).boot?.args, WORKER_ARGS_V2);
  await waitFor(async () => (await a.groupList()).every((g) => g.id !== 'metalbox-system.talos-cp-02'), {
    what: 'talos-cp-02 gone from a',
  });
  await waitFor(
    async () =>
      endpointEntry(
        await getOrUndefined<GroupObject>(backend.store, GroupKind, 'talos-worker-03'),
        pair.a.rpcEndpoint,
      )?.synced,
    { what: 'talos-worker-03 synced to a' },
  );
  const answer = await fetchIpxe(pair.a.httpURL, 'aa:bb:cc:dd:ee:13');
  assert.equal(
    answer.body,
    `#!ipxe\nkernel /assets/vmlinuz ${WORKER_ARGS_V2.join(' ')}\ninitrd /assets/initramfs.xz\nboot\n`,
  );

  // The deleted group waits for b: its finalizer stays and status says why.
  const deleting = await getOrUndefined<GroupObject>(backend.store, GroupKind, 'talos-cp-02');
  assert.ok(deleting?.metadata.deletionTimestamp);
  await waitFor(
    async () =>
      condition(await getOrUndefined<GroupObject>(backend.store, GroupKind, 'talos-cp-02'), 'Synced')
        ?.reason === 'Deleting',
    { what: 'talos-cp-02 Synced=False Deleting' },
  );
  assert.equal(await metricValue(world.registry, 'metalbox_matchbox_endpoint_up', { endpoint: 'b' }), 0);
  assert.equal(await metricValue(world.registry, 'metalbox_matchbox_endpoint_up', { endpoint: 'a' }), 1);
  await world.sync.drift.scanNow('b');
  assert.ok(
    world.logs.entries.some((e) => e.msg === 'drift scan failed' && e.fields.endpoint === 'b'),
    'the failing drift scan of b is logged',
  );
});

test('the endpoint rebuilt with an empty data dir is refilled without user action', async () => {
  await pair.b.start({ wipeData: true });
  await waitFor(async () => JSON.stringify(await ownedIds(b)) === JSON.stringify(await ownedIds(a)), {
    what: 'b holding what a holds',
    timeoutMs: 60_000,
  });
  await waitAllSynced(backend.store, 'every object Synced on both endpoints again', 60_000);
  await waitFor(async () => (await getOrUndefined(backend.store, GroupKind, 'talos-cp-02')) === undefined, {
    what: 'talos-cp-02 deleted once b confirmed',
    timeoutMs: 60_000,
  });

  for (const id of ['metalbox-system.talos-control-plane', 'metalbox-system.talos-worker']) {
    assert.deepEqual(await b.profileGet(id), await a.profileGet(id));
  }
  for (const g of await a.groupList()) assert.deepEqual(await b.groupGet(g.id), g);
  await assert.rejects(b.groupGet('metalbox-system.talos-cp-02'), MatchboxNotFoundError);
  assert.equal((await fetchIpxe(pair.b.httpURL, 'aa:bb:cc:dd:ee:13')).status, 200);
  assert.equal((await fetchIpxe(pair.b.httpURL, 'aa:bb:cc:dd:ee:01')).status, 200);
  assert.equal((await fetchIpxe(pair.b.httpURL, 'aa:bb:cc:dd:ee:02')).status, 404);

  const worker = await getOrUndefined<ProfileObject>(backend.store, ProfileKind, 'talos-worker');
  assert.deepEqual(
    worker?.status?.endpoints?.map((e) => [e.endpoint, e.synced, e.observedGeneration, e.lastError]),
    [
      [pair.a.rpcEndpoint, true, 2, undefined],
      [pair.b.rpcEndpoint, true, 2, undefined],
    ],
  );
  assert.ok(
    (await metricValue(world.registry, 'metalbox_matchbox_drift_repairs_total', { endpoint: 'b' })) >= 4,
  );
  assert.equal(await metricValue(world.registry, 'metalbox_matchbox_endpoint_up', { endpoint: 'b' }), 1);
});

test('a hung endpoint (its process stopped) does not hold up the one that answers', async () => {
  const groups = Array.from({ length: 64 }, (_, i) => ({
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'MatchboxGroup',
    metadata: { name: `hung-${i}`, namespace: NAMESPACE },
    spec: {
      profileRef: { name: 'talos-worker' },
      selector: { mac: `aa:bb:cc:dd:f0:${i.toString(16).padStart(2, '0')}` },
    },
  }));
  const pid = pair.b.process().pid;
  process.kill(pid, 'SIGSTOP');
  try {
    const started = Date.now();
    await apply(backend.store, groups as never);
    const onA = async () => {
      const { items } = await backend.store.list<GroupObject>(GroupKind, { namespace: NAMESPACE });
      return items.filter(
        (g) => g.metadata.name.startsWith('hung-') && endpointEntry(g, pair.a.rpcEndpoint)?.synced,
      );
    };
    await waitFor(async () => (await onA()).length === groups.length, {
      what: 'every new group on a',
      timeoutMs: 60_000,
    });
    // Waiting out b's 5 s deadline in every reconcile would take 64 / 8 workers × 5 s = 40 s.
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 25_000, `a was held up by the hung b for ${elapsed} ms`);
    const [sample] = await onA();
    assert.match(
      endpointEntry(sample, pair.b.rpcEndpoint)?.lastError ?? '',
      new RegExp(`^Matchbox at ${pair.b.rpcEndpoint} is unreachable: no answer within 5s`),
    );
    assert.ok(
      (await metricValue(world.registry, 'metalbox_matchbox_calls_total', {
        endpoint: 'b',
        result: 'held',
      })) > 0,
    );
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await waitAllSynced(backend.store, 'every object Synced once b answers again', 90_000);
  assert.equal(
    (await b.groupList()).filter((g) => g.id.startsWith('metalbox-system.hung-')).length,
    groups.length,
  );
});
