// Two metalbox instances with separate stores on one real Matchbox pair, managing the same
// namespace (staging beside production): each writes its owner identity into every object, keeps
// its own objects through many drift scans of both, never deletes or overwrites the other's, adopts
// once the unmarked objects its own store declares, and names a group of somebody else's that
// selects the same machines.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GroupKind, type GroupObject } from '../../../src/controllers/matchbox/kinds.ts';
import { SecretKind } from '../../../src/controllers/matchbox/secrets.ts';
import { SELECTOR_UNIQUE } from '../../../src/controllers/matchbox/status.ts';
import type { MatchboxClient } from '../../../src/matchbox/client.ts';
import { ownerOf } from '../../../src/matchbox/owner.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import { startMatchboxPair } from '../../env/matchbox.ts';
import { waitFor } from '../../env/wait.ts';
import {
  apply,
  clientFor,
  condition,
  credentialsSecret,
  eventsFor,
  getOrUndefined,
  metricValue,
  NAMESPACE,
  type Pair,
  pairConfig,
  type StoreBackend,
  type SyncWorld,
  seedManifests,
  startFileBackend,
  startSync,
  waitAllSynced,
} from './world.ts';

let pair: Pair;
let prodStore: StoreBackend;
let stagingStore: StoreBackend;
let prod: SyncWorld;
let staging: SyncWorld;
let clients: MatchboxClient[];

const profile = (name: string): Resource => ({
  apiVersion: 'metalbox.io/v1alpha1',
  kind: 'MatchboxProfile',
  metadata: { name, namespace: NAMESPACE },
  spec: { displayName: `staging ${name}`, kernel: '/assets/vmlinuz', initrd: [], args: ['staging=1'] },
});
const group = (name: string, profileName: string, mac: string): Resource => ({
  apiVersion: 'metalbox.io/v1alpha1',
  kind: 'MatchboxGroup',
  metadata: { name, namespace: NAMESPACE },
  spec: { profileRef: { name: profileName }, selector: { mac } },
});

/** Staging's fleet: its own objects, plus a group named like one of production's. */
const stagingManifests = (): Resource[] => [
  profile('staging-worker'),
  group('staging-01', 'staging-worker', 'aa:bb:cc:00:00:01'),
  group('staging-02', 'staging-worker', 'aa:bb:cc:00:00:02'),
  group('talos-cp-01', 'staging-worker', 'aa:bb:cc:00:00:03'),
];

// Written by metalbox before owner identities existed: one production declares, one nobody does.
const legacyDeclared = {
  id: `${NAMESPACE}.talos-worker-02`,
  profile: `${NAMESPACE}.talos-worker`,
  selector: { mac: 'aa:bb:cc:dd:ee:12' },
  metadata: {},
};
const legacyOrphan = {
  id: `${NAMESPACE}.decommissioned`,
  profile: `${NAMESPACE}.talos-worker`,
  selector: {},
  metadata: {},
};
// Terraform's original of worker-01, still selecting its MAC.
const terraformGroup = {
  id: 'worker-01',
  profile: 'worker',
  selector: { mac: 'aa:bb:cc:dd:ee:11' },
  metadata: {},
};

before(async () => {
  [pair, prodStore, stagingStore] = await Promise.all([
    startMatchboxPair(),
    startFileBackend(),
    startFileBackend(),
  ]);
  clients = [clientFor(pair, pair.a), clientFor(pair, pair.b)];
  for (const c of clients) {
    await c.groupPut(legacyDeclared);
    await c.groupPut(legacyOrphan);
    await c.groupPut(terraformGroup);
  }
  for (const s of [prodStore, stagingStore]) await s.store.create(SecretKind, credentialsSecret(pair));
  // Short scans, so that both instances scan each other's objects many times over.
  prod = await startSync(prodStore.store, pairConfig(pair, { owner: 'prod', driftScanIntervalSeconds: 1 }));
  staging = await startSync(
    stagingStore.store,
    pairConfig(pair, { owner: 'staging', driftScanIntervalSeconds: 1 }),
  );
  await apply(prodStore.store, seedManifests());
  await apply(stagingStore.store, stagingManifests());
  await waitAllSynced(prodStore.store, 'production Synced');
});
after(async () => {
  await Promise.all([prod?.stop(), staging?.stop()]);
  for (const c of clients ?? []) c.close();
  await Promise.all([pair?.destroy(), prodStore?.close(), stagingStore?.close()]);
});

/** Owner of each object with metalbox's id shape on one endpoint, by `kind/id`. */
async function owners(c: MatchboxClient): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const p of await c.profileList())
    if (p.id.startsWith(`${NAMESPACE}.`)) out.set(`profile/${p.id}`, ownerOf(p));
  for (const g of await c.groupList())
    if (g.id.startsWith(`${NAMESPACE}.`)) out.set(`group/${g.id}`, ownerOf(g));
  return out;
}

const okScans = async (world: SyncWorld, endpoint: string) =>
  metricValue(world.registry, 'metalbox_matchbox_drift_scans_total', { endpoint, result: 'ok' });

test('each instance keeps its own objects through many drift scans of both, and deletes nothing of the other', async () => {
  const start = await Promise.all([prod, staging].flatMap((w) => ['a', 'b'].map((e) => okScans(w, e))));
  // At least ten scans of each endpoint by each instance, interleaved by their own timers.
  await waitFor(
    async () => {
      const now = await Promise.all([prod, staging].flatMap((w) => ['a', 'b'].map((e) => okScans(w, e))));
      return now.every((n, i) => n >= start[i]! + 10);
    },
    { what: 'ten drift scans of each endpoint by each instance', timeoutMs: 90_000, intervalMs: 250 },
  );
  const want = new Map<string, string | undefined>([
    ['profile/metalbox-system.talos-control-plane', 'prod'],
    ['profile/metalbox-system.talos-worker', 'prod'],
    ['group/metalbox-system.talos-cp-01', 'prod'],
    ['group/metalbox-system.talos-cp-02', 'prod'],
    ['group/metalbox-system.talos-cp-03', 'prod'],
    ['group/metalbox-system.talos-worker-01', 'prod'],
    // Unmarked but declared by production's store: adopted by production.
    ['group/metalbox-system.talos-worker-02', 'prod'],
    ['profile/metalbox-system.staging-worker', 'staging'],
    ['group/metalbox-system.staging-01', 'staging'],
    ['group/metalbox-system.staging-02', 'staging'],
    // Unmarked and declared by neither: left alone by both.
    ['group/metalbox-system.decommissioned', undefined],
  ]);
  for (const c of clients) assert.deepEqual(await owners(c), want);
  for (const world of [prod, staging]) {
    assert.equal(
      await metricValue(world.registry, 'metalbox_matchbox_drift_repairs_total', { action: 'deleted' }),
      0,
      'no drift scan deleted anything',
    );
  }
  // Production's objects are what production declares (staging never overwrote its talos-cp-01).
  for (const c of clients) {
    const cp01 = await c.groupGet(`${NAMESPACE}.talos-cp-01`);
    assert.equal(cp01.profile, `${NAMESPACE}.talos-control-plane`);
    assert.deepEqual(cp01.selector, { mac: 'aa:bb:cc:dd:ee:01' });
    assert.deepEqual(
      (await c.profileGet(`${NAMESPACE}.staging-worker`)).name,
      'metalbox:staging staging staging-worker',
    );
  }
  assert.ok(
    (await metricValue(staging.registry, 'metalbox_matchbox_objects_not_owned', {
      holder: 'other-instance',
    })) >= 7,
  );
  assert.ok(
    (await metricValue(prod.registry, 'metalbox_matchbox_objects_not_owned', { holder: 'unmarked' })) >= 1,
  );
});

test('a declared object another instance holds is reported on the resource, never overwritten', async () => {
  await waitFor(
    async () =>
      condition(await getOrUndefined<GroupObject>(stagingStore.store, GroupKind, 'talos-cp-01'), 'Synced')
        ?.reason === 'OwnedByAnotherInstance',
    { what: 'staging talos-cp-01 Synced=False OwnedByAnotherInstance', timeoutMs: 30_000 },
  );
  const cp01 = await getOrUndefined<GroupObject>(stagingStore.store, GroupKind, 'talos-cp-01');
  assert.match(condition(cp01, 'Synced')!.message, /owner identity "prod"/);
  await staging.events.flush();
  assert.ok((await eventsFor(stagingStore.store, 'talos-cp-01')).length > 0);
});

test('unmarked objects the store declares are adopted once, with an Event', async () => {
  await prod.events.flush();
  const adopted = await eventsFor(prodStore.store, 'talos-worker-02', 'Adopted');
  assert.equal(adopted.length, 1, 'one series: adopted on the first scan of each endpoint');
  assert.match(
    adopted[0]!.message,
    /carried no owner identity \(written before owners\); adopted: written again with owner prod/,
  );
  assert.equal((await eventsFor(stagingStore.store, 'talos-worker-02')).length, 0);
});

test('a group whose selector a group metalbox does not own also selects says so, naming it', async () => {
  await waitFor(
    async () =>
      condition(
        await getOrUndefined<GroupObject>(prodStore.store, GroupKind, 'talos-worker-01'),
        SELECTOR_UNIQUE,
      )?.status === 'False',
    { what: 'talos-worker-01 SelectorUnique=False', timeoutMs: 30_000 },
  );
  const c = condition(
    await getOrUndefined<GroupObject>(prodStore.store, GroupKind, 'talos-worker-01'),
    SELECTOR_UNIQUE,
  )!;
  assert.equal(c.reason, 'SharedWithUnownedGroup');
  assert.match(c.message, /worker-01 \(not written by metalbox\) with the same selector/);
  assert.equal(
    condition(await getOrUndefined<GroupObject>(prodStore.store, GroupKind, 'talos-cp-02'), SELECTOR_UNIQUE),
    undefined,
  );

  // Terraform's original goes: the condition goes with it at the next scans.
  for (const client of clients) await client.groupDelete('worker-01');
  await waitFor(
    async () =>
      condition(
        await getOrUndefined<GroupObject>(prodStore.store, GroupKind, 'talos-worker-01'),
        SELECTOR_UNIQUE,
      ) === undefined,
    { what: 'SelectorUnique cleared', timeoutMs: 30_000 },
  );
});

test('deleting a resource removes only its own instance’s object', async () => {
  // Staging drops its talos-cp-01 (which never reached Matchbox): production's stays.
  await stagingStore.store.delete(GroupKind, { namespace: NAMESPACE, name: 'talos-cp-01' });
  await waitFor(async () => !(await getOrUndefined(stagingStore.store, GroupKind, 'talos-cp-01')), {
    what: 'staging talos-cp-01 gone',
    timeoutMs: 30_000,
  });
  for (const c of clients) assert.equal(ownerOf(await c.groupGet(`${NAMESPACE}.talos-cp-01`)), 'prod');
  // The next scans forget the gone resource's write notes: what stays is one per declared object.
  await waitFor(async () => staging.sync.pool.endpoints.every((e) => e.notedWrites === 3), {
    what: 'write notes of declared objects only',
    timeoutMs: 30_000,
  });
});
