// The migration path end to end: import an existing Matchbox data dir, apply the manifests to a
// real kube-apiserver, let the sync controllers write them to the pair, and every machine gets
// byte-identical boot answers from the pair and from a Matchbox serving the original data dir.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SecretKind } from '../../../src/controllers/matchbox/secrets.ts';
import { validateObject } from '../../../src/crds/validate.ts';
import { importDataDir } from '../../../src/matchbox/import.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import { type MatchboxPeer, startMatchbox, startMatchboxPair } from '../../env/matchbox.ts';
import { scratchDir } from '../../env/peers.ts';
import {
  apply,
  credentialsSecret,
  NAMESPACE,
  type Pair,
  pairConfig,
  type StoreBackend,
  type SyncWorld,
  startKubeBackend,
  startSync,
  waitAllSynced,
} from './world.ts';

const seedData = fileURLToPath(new URL('../matchbox/fixtures/seed-data/', import.meta.url));
const SEED_MACS = [
  'aa:bb:cc:dd:ee:01',
  'aa:bb:cc:dd:ee:02',
  'aa:bb:cc:dd:ee:03',
  'aa:bb:cc:dd:ee:11',
  'aa:bb:cc:dd:ee:12',
];

let backend: StoreBackend;
let pair: Pair;
let world: SyncWorld;
const scratch = scratchDir('matchbox-sync-import');

before(async () => {
  [backend, pair] = await Promise.all([startKubeBackend(), startMatchboxPair()]);
  await backend.store.create(SecretKind, credentialsSecret(pair));
  world = await startSync(backend.store, pairConfig(pair));
});
after(async () => {
  await world?.stop();
  await Promise.all([pair?.destroy(), backend?.close()]);
  scratch.remove();
});

async function answer(peer: MatchboxPeer, path: string): Promise<string> {
  const res = await fetch(`${peer.httpURL}${path}`);
  return `${res.status}\n${await res.text()}`;
}

/** The imported manifests as a store takes them: metalbox kinds validated (defaults applied). */
function importManifests(dir: string): Resource[] {
  const imported = importDataDir(dir, { namespace: NAMESPACE });
  assert.deepEqual(imported.errors, []);
  return imported.manifests.map((m) => {
    if (m.kind === 'Secret') return m as unknown as Resource;
    const result = validateObject(m);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    return result.object as unknown as Resource;
  });
}

test('the imported seed data dir, applied, makes both servers answer every machine as the original does', async () => {
  const original = await startMatchbox({
    name: 'matchbox-import-original',
    pki: pair.pki,
    seedDataFrom: seedData,
  });
  try {
    await apply(backend.store, importManifests(seedData));
    await waitAllSynced(backend.store);
    for (const mac of [...SEED_MACS, 'aa:bb:cc:dd:ee:99']) {
      for (const spelling of [mac, mac.toUpperCase().replaceAll(':', '-')]) {
        const path = `/ipxe?mac=${encodeURIComponent(spelling)}`;
        const want = await answer(original, path);
        assert.equal(await answer(pair.a, path), want, `a ${path}`);
        assert.equal(await answer(pair.b, path), want, `b ${path}`);
      }
    }
    assert.match(
      await answer(pair.a, '/ipxe?mac=aa:bb:cc:dd:ee:01'),
      /^200\n#!ipxe\nkernel \/assets\/vmlinuz initrd=/,
    );
  } finally {
    await original.destroy();
  }
});

test('an imported generic template travels through its Secret to both servers (/generic identical)', async () => {
  const dir = join(scratch.dir, 'generic-data');
  const files: Record<string, string> = {
    'profiles/install.json': JSON.stringify({
      id: 'install',
      boot: { kernel: '/assets/vmlinuz', initrd: [], args: ['talos.platform=metal'] },
      generic_id: 'install.yaml.tmpl',
    }),
    'groups/node-7.json': JSON.stringify({
      id: 'node-7',
      profile: 'install',
      selector: { mac: '52:54:00:a1:9c:ae', os: 'fresh' },
      metadata: { hostname: 'node-7', disks: { install: '/dev/sda' } },
    }),
    'generic/install.yaml.tmpl':
      'machine:\n  network:\n    hostname: {{.hostname}}\n  install:\n    disk: {{.disks.install}}\n',
  };
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const original = await startMatchbox({ name: 'matchbox-import-generic', pki: pair.pki, seedDataFrom: dir });
  try {
    await apply(backend.store, importManifests(dir));
    await waitAllSynced(backend.store);
    for (const path of ['/ipxe', '/generic']) {
      const query = `${path}?mac=52-54-00-A1-9C-AE&os=fresh`;
      const want = await answer(original, query);
      assert.match(want, /^200\n/, `${path} answers on the original`);
      assert.equal(await answer(pair.a, query), want, `a ${query}`);
      assert.equal(await answer(pair.b, query), want, `b ${query}`);
    }
  } finally {
    await original.destroy();
  }
});
