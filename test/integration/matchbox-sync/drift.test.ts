// Drift repair on the real Matchbox pair from a real kube-apiserver: objects changed behind
// metalbox's back are written again, owned objects nobody declares are removed, foreign objects
// are never touched, and a wrong boot answer shows up in BootAnswerVerified with the diff.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GroupKind, type GroupObject } from '../../../src/controllers/matchbox/kinds.ts';
import { SecretKind } from '../../../src/controllers/matchbox/secrets.ts';
import type { MatchboxClient } from '../../../src/matchbox/client.ts';
import { MatchboxNotFoundError } from '../../../src/matchbox/errors.ts';
import type { Group, Profile } from '../../../src/matchbox/objects.ts';
import { markedName, ownerOf } from '../../../src/matchbox/owner.ts';
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
  // A long interval: the scans these tests look at are the first (armed) one and explicit ones.
  world = await startSync(backend.store, pairConfig(pair, { driftScanIntervalSeconds: 3600 }));
  await apply(backend.store, seedManifests());
  await waitAllSynced(backend.store);
});
after(async () => {
  await world?.stop();
  a?.close();
  b?.close();
  await Promise.all([pair?.destroy(), backend?.close()]);
});

const foreignProfile: Profile = {
  id: 'legacy-cp',
  boot: { kernel: '/assets/old', initrd: [], args: ['quiet'] },
};
const foreignDotted: Profile = { id: 'terraform.cp', name: 'from terraform' };
const foreignGroup: Group = {
  id: 'legacy-cp-01',
  profile: 'legacy-cp',
  selector: { mac: 'aa:bb:cc:dd:ee:77' },
  metadata: { owner: 'terraform' },
};

test('the first drift scan of each endpoint runs as soon as the controllers reconcile', async () => {
  for (const endpoint of ['a', 'b']) {
    await waitFor(
      async () =>
        (await metricValue(world.registry, 'metalbox_matchbox_drift_scans_total', {
          endpoint,
          result: 'ok',
        })) >= 1,
      {
        what: `a drift scan of ${endpoint}`,
      },
    );
  }
});

test('foreign objects written straight into Matchbox survive drift repair', async () => {
  for (const c of [a, b]) {
    await c.profilePut(foreignProfile);
    await c.profilePut(foreignDotted);
    await c.groupPut(foreignGroup);
  }
  await world.sync.drift.scanNow('a');
  await world.sync.drift.scanNow('b');
  for (const c of [a, b]) {
    assert.deepEqual(await c.profileGet('legacy-cp'), foreignProfile);
    assert.deepEqual(await c.profileGet('terraform.cp'), foreignDotted);
    assert.deepEqual(await c.groupGet('legacy-cp-01'), foreignGroup);
  }
  assert.equal(await metricValue(world.registry, 'metalbox_matchbox_drift_repairs_total'), 0);
});

test('owned objects changed or removed behind metalbox are written back, with a metric and an Event each', async () => {
  const worker = await b.profileGet('metalbox-system.talos-worker');
  const cp02 = await b.groupGet('metalbox-system.talos-cp-02');
  await b.profilePut({ ...worker, boot: { ...worker.boot!, args: ['talos.platform=metal', 'hacked=1'] } });
  await b.groupPut({ ...cp02, selector: { mac: 'aa:bb:cc:dd:ee:99' } });
  await b.groupDelete('metalbox-system.talos-worker-02');

  await world.sync.drift.scanNow('b');

  assert.deepEqual(
    await b.profileGet('metalbox-system.talos-worker'),
    await a.profileGet('metalbox-system.talos-worker'),
  );
  assert.deepEqual(await b.groupGet('metalbox-system.talos-cp-02'), cp02);
  assert.deepEqual(
    await b.groupGet('metalbox-system.talos-worker-02'),
    await a.groupGet('metalbox-system.talos-worker-02'),
  );
  const repairs = (labels: Record<string, string>) =>
    metricValue(world.registry, 'metalbox_matchbox_drift_repairs_total', { endpoint: 'b', ...labels });
  assert.equal(await repairs({ kind: 'profile', action: 'updated' }), 1);
  assert.equal(await repairs({ kind: 'group', action: 'updated' }), 1);
  assert.equal(await repairs({ kind: 'group', action: 'created' }), 1);
  assert.equal(
    await metricValue(world.registry, 'metalbox_matchbox_drift_repairs_total', { endpoint: 'a' }),
    0,
  );

  await world.events.flush();
  const [profileEvent] = await eventsFor(backend.store, 'talos-worker', 'DriftRepaired');
  assert.equal(profileEvent?.type, 'Warning');
  assert.equal(
    profileEvent?.message,
    `Matchbox profile metalbox-system.talos-worker differed from the declared spec on Matchbox b (${pair.b.rpcEndpoint}) (boot.args differed); written again`,
  );
  const [missingEvent] = await eventsFor(backend.store, 'talos-worker-02', 'DriftRepaired');
  assert.equal(
    missingEvent?.message,
    `Matchbox group metalbox-system.talos-worker-02 was missing on Matchbox b (${pair.b.rpcEndpoint}); written again`,
  );
  assert.equal((await eventsFor(backend.store, 'talos-cp-02', 'DriftRepaired')).length, 1);
});

test('objects written before owner identities (no mark) are adopted by the drift scan: written again with the mark', async () => {
  const cp03 = await b.groupGet('metalbox-system.talos-cp-03');
  assert.equal(ownerOf(cp03), world.sync.owner);
  const { name: _, ...unmarked } = cp03;
  await b.groupPut(unmarked);
  await world.sync.drift.scanNow('b');
  assert.deepEqual(await b.groupGet('metalbox-system.talos-cp-03'), cp03);
  await world.events.flush();
  const [adopted] = await eventsFor(backend.store, 'talos-cp-03', 'Adopted');
  assert.equal(
    adopted?.message,
    `Matchbox group metalbox-system.talos-cp-03 carried no owner identity (written before owners); adopted: written again with owner ${world.sync.owner}`,
  );
});

test('owned objects no resource declares are deleted, foreign and unmarked ones kept', async () => {
  const name = markedName(world.sync.owner, undefined);
  await a.profilePut({
    id: 'metalbox-system.stale',
    name,
    boot: { kernel: '/assets/x', initrd: [], args: [] },
  });
  await a.groupPut({
    id: 'metalbox-system.stale-01',
    name,
    profile: 'metalbox-system.stale',
    selector: {},
    metadata: {},
  });
  // Same id shape, but no owner mark (written before owners) and declared by no resource here:
  // another instance's store may declare it, so it stays.
  const unmarked: Group = {
    id: 'metalbox-system.unmarked-01',
    profile: 'legacy-cp',
    selector: {},
    metadata: {},
  };
  await a.groupPut(unmarked);
  await world.sync.drift.scanNow('a');
  await assert.rejects(a.profileGet('metalbox-system.stale'), MatchboxNotFoundError);
  await assert.rejects(a.groupGet('metalbox-system.stale-01'), MatchboxNotFoundError);
  assert.deepEqual(await a.profileGet('legacy-cp'), foreignProfile);
  assert.deepEqual(await a.groupGet('legacy-cp-01'), foreignGroup);
  assert.deepEqual(await a.groupGet(unmarked.id), unmarked);
  assert.equal(
    await metricValue(world.registry, 'metalbox_matchbox_objects_not_owned', {
      endpoint: 'a',
      holder: 'unmarked',
    }),
    1,
  );
  await a.groupDelete(unmarked.id);
  assert.equal(
    await metricValue(world.registry, 'metalbox_matchbox_drift_repairs_total', {
      endpoint: 'a',
      action: 'deleted',
    }),
    2,
  );
  // Every seed object is still there.
  assert.equal((await a.groupList()).filter((g) => g.id.startsWith('metalbox-system.')).length, 5);
});

test('a boot answer that differs from the profile sets BootAnswerVerified=False with the diff, until repaired', async () => {
  const cp = await b.profileGet('metalbox-system.talos-control-plane');
  await b.profilePut({
    ...cp,
    boot: { ...cp.boot!, args: [...cp.boot!.args.filter((x) => x !== 'pti=on'), 'debug'] },
  });
  // A new group generation is written and verified again.
  await update<GroupObject>(backend.store, GroupKind, 'talos-cp-01', (g) => {
    g.spec.metadata = { rack: 'r1' };
  });
  const get = () => getOrUndefined<GroupObject>(backend.store, GroupKind, 'talos-cp-01');
  await waitFor(async () => condition(await get(), 'BootAnswerVerified')?.status === 'False', {
    what: 'BootAnswerVerified=False on talos-cp-01',
  });
  const verdict = condition(await get(), 'BootAnswerVerified')!;
  assert.equal(verdict.reason, 'BootAnswerMismatch');
  assert.equal(
    verdict.message,
    'GET /ipxe?mac=aa:bb:cc:dd:ee:01 does not boot MatchboxProfile metalbox-system/talos-control-plane (generation 1): ' +
      `b (${pair.b.httpURL}): args missing: pti=on, args unexpected: debug`,
  );
  assert.equal(condition(await get(), 'Synced')?.status, 'True');
  assert.ok(
    world.logs.entries.some(
      (e) => e.msg === 'reconcile failed' && /args missing: pti=on/.test(JSON.stringify(e.fields)),
    ),
    'the mismatch is logged',
  );
  // The drift scan puts the profile back; the retried reconcile then verifies again.
  await world.sync.drift.scanNow('b');
  await waitFor(async () => condition(await get(), 'BootAnswerVerified')?.status === 'True', {
    what: 'BootAnswerVerified=True again',
    timeoutMs: 30_000,
  });
});
