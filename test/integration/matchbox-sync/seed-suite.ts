// The sync of the seed fleet and of day-2 changes (update in place, delete, missing profile, MAC
// forms, generic templates) on the real Matchbox pair, run against any store backend.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  GroupKind,
  type GroupObject,
  ProfileKind,
  type ProfileObject,
} from '../../../src/controllers/matchbox/kinds.ts';
import { SecretKind, type SecretObject } from '../../../src/controllers/matchbox/secrets.ts';
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
  NAMESPACE,
  type Pair,
  pairConfig,
  type StoreBackend,
  type SyncWorld,
  seedManifests,
  startSync,
  update,
  waitAllSynced,
} from './world.ts';

const SEED_ARGS =
  'initrd=initramfs.xz init_on_alloc=1 slab_nomerge pti=on console=tty0 console=ttyS0 printk.devkmsg=on ' +
  'talos.platform=metal talos.config=http://10.0.20.5:8080/assets/controlplane.yaml';
const CONTROL_PLANE_IPXE = `#!ipxe\nkernel /assets/vmlinuz ${SEED_ARGS}\ninitrd /assets/initramfs.xz\nboot\n`;

const profile = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'metalbox.io/v1alpha1',
  kind: 'MatchboxProfile',
  metadata: { name, namespace: NAMESPACE },
  spec,
});
const group = (name: string, profileName: string, selector: Record<string, string>) => ({
  apiVersion: 'metalbox.io/v1alpha1',
  kind: 'MatchboxGroup',
  metadata: { name, namespace: NAMESPACE },
  spec: { profileRef: { name: profileName }, selector },
});

export function seedSuite(label: string, startBackend: () => Promise<StoreBackend>): void {
  describe(`Matchbox sync of the seed fleet (${label})`, () => {
    let backend: StoreBackend;
    let pair: Pair;
    let world: SyncWorld;
    let clients: MatchboxClient[];

    before(async () => {
      [backend, pair] = await Promise.all([startBackend(), startMatchboxPair()]);
      clients = [clientFor(pair, pair.a), clientFor(pair, pair.b)];
      await backend.store.create(SecretKind, credentialsSecret(pair));
      world = await startSync(backend.store, pairConfig(pair));
    });
    after(async () => {
      await world?.stop();
      for (const c of clients ?? []) c.close();
      await Promise.all([pair?.destroy(), backend?.close()]);
    });

    const get = <T extends ProfileObject | GroupObject>(kind: typeof ProfileKind, name: string) =>
      getOrUndefined<T & { apiVersion: string; kind: string }>(backend.store, kind, name);

    it('puts the seed manifests on both Matchbox servers, identical, and /ipxe boots the seed args', async () => {
      await apply(backend.store, seedManifests());
      await waitAllSynced(backend.store);
      const [a, b] = clients as [MatchboxClient, MatchboxClient];
      const byId = <T extends { id: string }>(xs: T[]) => xs.sort((x, y) => x.id.localeCompare(y.id));
      const [profilesA, profilesB, groupsA, groupsB] = await Promise.all([
        a.profileList().then(byId),
        b.profileList().then(byId),
        a.groupList().then(byId),
        b.groupList().then(byId),
      ]);
      assert.deepEqual(profilesA, profilesB);
      assert.deepEqual(groupsA, groupsB);
      assert.deepEqual(
        profilesA.map((p) => p.id),
        ['metalbox-system.talos-control-plane', 'metalbox-system.talos-worker'],
      );
      assert.deepEqual(
        groupsA.map((g) => [g.id, g.profile, g.selector.mac]),
        [
          ['metalbox-system.talos-cp-01', 'metalbox-system.talos-control-plane', 'aa:bb:cc:dd:ee:01'],
          ['metalbox-system.talos-cp-02', 'metalbox-system.talos-control-plane', 'aa:bb:cc:dd:ee:02'],
          ['metalbox-system.talos-cp-03', 'metalbox-system.talos-control-plane', 'aa:bb:cc:dd:ee:03'],
          ['metalbox-system.talos-worker-01', 'metalbox-system.talos-worker', 'aa:bb:cc:dd:ee:11'],
          ['metalbox-system.talos-worker-02', 'metalbox-system.talos-worker', 'aa:bb:cc:dd:ee:12'],
        ],
      );
      for (const peer of [pair.a, pair.b]) {
        const answer = await fetchIpxe(peer.httpURL, 'aa:bb:cc:dd:ee:01');
        assert.equal(answer.status, 200);
        assert.equal(answer.body, CONTROL_PLANE_IPXE);
      }
      const cp01 = await get<GroupObject>(GroupKind, 'talos-cp-01');
      assert.deepEqual(
        cp01?.status?.endpoints?.map((e) => [e.endpoint, e.synced, e.observedGeneration, e.lastError]),
        [
          [pair.a.rpcEndpoint, true, 1, undefined],
          [pair.b.rpcEndpoint, true, 1, undefined],
        ],
      );
      assert.equal(cp01?.status?.matchboxId, 'metalbox-system.talos-cp-01');
      assert.ok(cp01?.metadata.finalizers?.includes('metalbox.io/matchbox-sync'));
      await waitFor(
        async () =>
          condition(await get<GroupObject>(GroupKind, 'talos-cp-01'), 'BootAnswerVerified')?.status ===
          'True',
        { what: 'BootAnswerVerified on talos-cp-01' },
      );
      const verified = condition(await get<GroupObject>(GroupKind, 'talos-cp-01'), 'BootAnswerVerified');
      assert.match(
        verified!.message,
        /boots MatchboxProfile metalbox-system\/talos-control-plane \(generation 1\) on: a, b$/,
      );
    });

    it("updates a profile's args in place on both servers and re-verifies its groups", async () => {
      const file = (dataPath: string) =>
        join(dataPath, 'profiles', 'metalbox-system.talos-control-plane.json');
      const inodes = [pair.a, pair.b].map((p) => statSync(file(p.dataPath)).ino);
      await update<ProfileObject>(backend.store, ProfileKind, 'talos-control-plane', (p) => {
        p.spec.args = [...(p.spec.args ?? []), 'talos.dashboard.disabled=1'];
      });
      await waitAllSynced(backend.store);
      for (const [i, peer] of [pair.a, pair.b].entries()) {
        const answer = await fetchIpxe(peer.httpURL, 'aa:bb:cc:dd:ee:02');
        assert.equal(
          answer.body,
          `#!ipxe\nkernel /assets/vmlinuz ${SEED_ARGS} talos.dashboard.disabled=1\ninitrd /assets/initramfs.xz\nboot\n`,
        );
        // Matchbox overwrote the same file: written in place, never deleted and re-created.
        assert.equal(statSync(file(peer.dataPath)).ino, inodes[i]);
      }
      const stored = await get<ProfileObject>(ProfileKind, 'talos-control-plane');
      assert.equal(stored?.metadata.generation, 2);
      assert.equal(endpointEntry(stored, pair.b.rpcEndpoint)?.observedGeneration, 2);
      await waitFor(
        async () =>
          /\(generation 2\)/.test(
            condition(await get<GroupObject>(GroupKind, 'talos-cp-02'), 'BootAnswerVerified')?.message ?? '',
          ),
        { what: 'talos-cp-02 verified against profile generation 2' },
      );
    });

    it('deletes a group from both servers before its finalizer goes', async () => {
      await backend.store.delete(GroupKind, { namespace: NAMESPACE, name: 'talos-cp-03' });
      await waitFor(async () => (await get<GroupObject>(GroupKind, 'talos-cp-03')) === undefined, {
        what: 'talos-cp-03 gone from the store',
      });
      for (const c of clients) {
        await assert.rejects(c.groupGet('metalbox-system.talos-cp-03'), MatchboxNotFoundError);
      }
      for (const peer of [pair.a, pair.b]) {
        assert.equal((await fetchIpxe(peer.httpURL, 'aa:bb:cc:dd:ee:03')).status, 404);
      }
    });

    it('says when a group refers to a profile that does not exist, and recovers when it appears', async () => {
      await apply(backend.store, [group('rescue-01', 'talos-rescue', { mac: 'aa:bb:cc:dd:ee:31' })] as never);
      await waitFor(
        async () =>
          condition(await get<GroupObject>(GroupKind, 'rescue-01'), 'ProfileResolved')?.status === 'False',
        { what: 'ProfileResolved=False on rescue-01' },
      );
      const missing = condition(await get<GroupObject>(GroupKind, 'rescue-01'), 'ProfileResolved')!;
      assert.equal(missing.reason, 'ProfileNotFound');
      assert.equal(
        missing.message,
        'MatchboxProfile metalbox-system/talos-rescue does not exist: Matchbox answers the machines this group matches with 404 until it is created',
      );
      await apply(backend.store, [
        profile('talos-rescue', { kernel: '/assets/rescue-vmlinuz', args: ['console=ttyS0'] }),
      ] as never);
      await waitFor(
        async () => {
          const g = await get<GroupObject>(GroupKind, 'rescue-01');
          return (
            condition(g, 'ProfileResolved')?.status === 'True' &&
            condition(g, 'BootAnswerVerified')?.status === 'True'
          );
        },
        { what: 'rescue-01 resolved and verified' },
      );
      assert.equal(
        (await fetchIpxe(pair.b.httpURL, 'aa:bb:cc:dd:ee:31')).body,
        '#!ipxe\nkernel /assets/rescue-vmlinuz console=ttyS0\nboot\n',
      );
    });

    it('writes MAC selectors in lowercase colon form, whatever form the manifest uses', async () => {
      await apply(backend.store, [
        group('hyphen-mac', 'talos-worker', { mac: 'AA-BB-CC-DD-EE-21' }),
      ] as never);
      await waitAllSynced(backend.store);
      for (const c of clients) {
        assert.deepEqual((await c.groupGet('metalbox-system.hyphen-mac')).selector, {
          mac: 'aa:bb:cc:dd:ee:21',
        });
      }
      assert.equal((await fetchIpxe(pair.a.httpURL, 'aa:bb:cc:dd:ee:21')).status, 200);
    });

    it('writes generic templates, inline or from a Secret, with GenericPut and links them by generic_id', async () => {
      await backend.store.create(SecretKind, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'generic-config', namespace: NAMESPACE },
        data: { 'template.txt': Buffer.from('secret template v1\n').toString('base64') },
      });
      await apply(backend.store, [
        profile('with-inline', {
          kernel: '/assets/vmlinuz',
          genericConfig: { inline: 'hostname={{.hostname}}\n' },
        }),
        profile('with-secret', {
          kernel: '/assets/vmlinuz',
          genericConfig: { secretRef: { name: 'generic-config', key: 'template.txt' } },
        }),
      ] as never);
      await waitAllSynced(backend.store);
      for (const c of clients) {
        assert.equal(
          (await c.profileGet('metalbox-system.with-inline')).generic_id,
          'metalbox-system.with-inline',
        );
        assert.equal(
          (await c.genericGet('metalbox-system.with-inline')).toString(),
          'hostname={{.hostname}}\n',
        );
        assert.equal(
          (await c.profileGet('metalbox-system.with-secret')).generic_id,
          'metalbox-system.with-secret',
        );
        assert.equal((await c.genericGet('metalbox-system.with-secret')).toString(), 'secret template v1\n');
      }
      // A new Secret value reaches every endpoint without any change to the profile.
      await update<SecretObject>(backend.store, SecretKind, 'generic-config', (s) => {
        s.data = { 'template.txt': Buffer.from('secret template v2\n').toString('base64') };
      });
      for (const c of clients) {
        await waitFor(
          async () =>
            (await c.genericGet('metalbox-system.with-secret')).toString() === 'secret template v2\n',
          {
            what: 'the new Secret value on every endpoint',
          },
        );
      }
      // Deleting the profile removes its template too.
      await backend.store.delete(ProfileKind, { namespace: NAMESPACE, name: 'with-inline' });
      await waitFor(async () => (await get<ProfileObject>(ProfileKind, 'with-inline')) === undefined, {
        what: 'with-inline gone',
      });
      for (const c of clients) {
        await assert.rejects(c.profileGet('metalbox-system.with-inline'), MatchboxNotFoundError);
        await assert.rejects(c.genericGet('metalbox-system.with-inline'), MatchboxNotFoundError);
      }
    });

    it('says when the Secret of a generic template is missing, and syncs once it exists', async () => {
      await apply(backend.store, [
        profile('with-late-secret', {
          kernel: '/assets/vmlinuz',
          genericConfig: { secretRef: { name: 'late-config', key: 'template' } },
        }),
      ] as never);
      const get = () => getOrUndefined<ProfileObject>(backend.store, ProfileKind, 'with-late-secret');
      await waitFor(async () => condition(await get(), 'Synced')?.reason === 'GenericConfigUnavailable', {
        what: 'Synced=False GenericConfigUnavailable',
      });
      assert.equal(
        condition(await get(), 'Synced')?.message,
        `spec.genericConfig.secretRef: Secret ${NAMESPACE}/late-config does not exist`,
      );
      await assert.rejects(clients[0]!.profileGet('metalbox-system.with-late-secret'), MatchboxNotFoundError);
      await backend.store.create(SecretKind, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'late-config', namespace: NAMESPACE },
        data: { template: Buffer.from('late\n').toString('base64') },
      });
      await waitFor(async () => condition(await get(), 'Synced')?.status === 'True', {
        what: 'Synced once the Secret exists',
      });
      for (const c of clients)
        assert.equal((await c.genericGet('metalbox-system.with-late-secret')).toString(), 'late\n');
    });

    it('leaves the manager running and no reconcile failing once everything is synced', async () => {
      await waitAllSynced(backend.store);
      assert.equal(world.manager.leading, true);
      assert.deepEqual(
        world.logs.entries.filter((e) => e.level === 'error').map((e) => e.msg),
        [],
      );
    });
  });
}
