// Migration from the seed's JSON-managed Matchbox: `metalbox import` its data dir, `metalbox render`
// the manifests, write the result to a real Matchbox pair, and every machine gets byte-identical
// boot answers from the pair and from a Matchbox serving the original data dir directly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { MatchboxClient } from '../../../src/matchbox/client.ts';
import { importDataDir } from '../../../src/matchbox/import.ts';
import type { Group, Profile } from '../../../src/matchbox/objects.ts';
import { renderProfile } from '../../../src/matchbox/render.ts';
import { renderManifests } from '../../../src/matchbox/render-set.ts';
import { type MatchboxPeer, startMatchbox, startMatchboxPair } from '../../env/matchbox.ts';
import { scratchDir } from '../../env/peers.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const seedData = fileURLToPath(new URL('./fixtures/seed-data/', import.meta.url));
const SEED_MACS = [
  'aa:bb:cc:dd:ee:01',
  'aa:bb:cc:dd:ee:02',
  'aa:bb:cc:dd:ee:03',
  'aa:bb:cc:dd:ee:11',
  'aa:bb:cc:dd:ee:12',
];

let pair: Awaited<ReturnType<typeof startMatchboxPair>>;
let original: MatchboxPeer;
const clients: MatchboxClient[] = [];
const scratch = scratchDir('matchbox-import');

before(async () => {
  pair = await startMatchboxPair();
  original = await startMatchbox({ name: 'matchbox-seed-original', pki: pair.pki, seedDataFrom: seedData });
});
after(async () => {
  for (const c of clients) c.close();
  await Promise.all([pair?.destroy(), original?.destroy()]);
  scratch.remove();
});

function metalbox(args: string[], input?: string) {
  const result = spawnSync(process.execPath, ['src/cli/main.ts', ...args], {
    cwd: repo,
    input,
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function clientFor(peer: MatchboxPeer): MatchboxClient {
  const client = new MatchboxClient({
    endpoint: peer.rpcEndpoint,
    tls: { ca: pair.pki.ca.cert, cert: pair.pki.client.cert, key: pair.pki.client.key },
  });
  clients.push(client);
  return client;
}

async function answer(peer: MatchboxPeer, path: string): Promise<string> {
  const res = await fetch(`${peer.httpURL}${path}`);
  return `${res.status}\n${await res.text()}`;
}

test('the seed data dir imports, renders and, written to both servers, boots every machine identically', async () => {
  const imported = metalbox(['import', seedData, '-n', 'metalbox-system']);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match(imported.stderr, /imported 2 profiles, 5 groups, 0 generic templates\n$/);
  assert.match(imported.stderr, /delete the originals from each Matchbox .*groups talos-cp-01, talos-cp-02/);

  const rendered = metalbox(['render', '-f', '-'], imported.stdout);
  assert.equal(rendered.code, 0, rendered.stderr);
  const { profiles, groups } = JSON.parse(rendered.stdout) as { profiles: Profile[]; groups: Group[] };
  assert.deepEqual(
    profiles.map((p) => p.id),
    ['metalbox-system.talos-control-plane', 'metalbox-system.talos-worker'],
  );
  assert.equal(groups.length, 5);

  for (const peer of [pair.a, pair.b]) {
    const client = clientFor(peer);
    for (const p of profiles) await client.profilePut(p);
    for (const g of groups) await client.groupPut(g);
    assert.equal((await client.groupList()).length, 5);
  }

  for (const mac of [...SEED_MACS, 'aa:bb:cc:dd:ee:99']) {
    for (const spelling of [mac, mac.toUpperCase().replaceAll(':', '-')]) {
      const path = `/ipxe?mac=${encodeURIComponent(spelling)}`;
      const want = await answer(original, path);
      assert.equal(await answer(pair.a, path), want, `${pair.a.name} ${path}`);
      assert.equal(await answer(pair.b, path), want, `${pair.b.name} ${path}`);
    }
  }
  assert.equal(await answer(pair.a, '/boot.ipxe'), await answer(original, '/boot.ipxe'));
  // The answer compared is the seed's real boot line, not two equal 404s.
  assert.equal(
    await answer(pair.a, '/ipxe?mac=aa:bb:cc:dd:ee:01'),
    '200\n#!ipxe\nkernel /assets/vmlinuz initrd=initramfs.xz init_on_alloc=1 slab_nomerge pti=on console=tty0 ' +
      'console=ttyS0 printk.devkmsg=on talos.platform=metal talos.config=http://10.0.20.5:8080/assets/controlplane.yaml\n' +
      'initrd /assets/initramfs.xz\nboot\n',
  );
  assert.match(
    await answer(pair.b, '/ipxe?mac=aa:bb:cc:dd:ee:12'),
    /talos\.config=http:\/\/10\.0\.20\.5:8080\/assets\/worker\.yaml\n/,
  );
});

test('generic templates and group metadata survive the round trip (/generic, /metadata)', async () => {
  const dir = join(scratch.dir, 'generic-data');
  const files: Record<string, string> = {
    'profiles/install.json': JSON.stringify({
      id: 'install',
      boot: {
        kernel: '/assets/vmlinuz',
        initrd: [],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an iPXE variable, expanded by iPXE at boot
        args: ['talos.config=http://10.0.20.5:8080/generic?mac=${mac:hexhyp}'],
      },
      generic_id: 'install.yaml.tmpl',
    }),
    'groups/node-7.json': JSON.stringify({
      id: 'node-7',
      profile: 'install',
      selector: { mac: '52:54:00:a1:9c:ae', os: 'fresh' },
      metadata: { hostname: 'node-7', vlan: 20, disks: { install: '/dev/sda' } },
    }),
    'generic/install.yaml.tmpl':
      'machine:\n  network:\n    hostname: {{.hostname}}\n  install:\n    disk: {{.disks.install}}\n# vlan {{.vlan}} os {{.os}}\n',
  };
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const source = await startMatchbox({ name: 'matchbox-generic-original', pki: pair.pki, seedDataFrom: dir });
  try {
    const imported = importDataDir(dir, { namespace: 'metal' });
    assert.deepEqual(imported.errors, []);
    const documents = imported.manifests.map((object, i) => ({ source: `#${i}`, object }));
    const rendered = renderManifests(documents, { defaultNamespace: 'metal' });
    assert.deepEqual(rendered.errors, []);
    assert.equal(rendered.generic.length, 1);
    const client = clientFor(pair.a);
    for (const manifest of imported.manifests) {
      if (manifest.kind !== 'MatchboxProfile') continue;
      const { profile, generic } = renderProfile(manifest);
      assert.ok(generic && 'secretRef' in generic);
      const secret = parseAllDocuments(
        JSON.stringify(imported.manifests.find((m) => m.kind === 'Secret')),
      )[0]!.toJS();
      await client.genericPut(generic.name, secret.stringData[generic.secretRef.key]);
      await client.profilePut(profile);
    }
    for (const group of rendered.groups) await client.groupPut(group);
    for (const path of ['/ipxe', '/generic']) {
      const query = `${path}?mac=52-54-00-A1-9C-AE&os=fresh`;
      const want = await answer(source, query);
      assert.match(want, /^200\n/, `${path} answers on the original`);
      assert.equal(await answer(pair.a, query), want, query);
    }
    // /metadata walks a Go map, so its line order changes from one request to the next even on
    // one server: compare the lines as a set.
    const lines = async (peer: MatchboxPeer) =>
      (await answer(peer, '/metadata?mac=52-54-00-A1-9C-AE&os=fresh')).split('\n').sort();
    const want = await lines(source);
    assert.ok(want.includes('DISKS_INSTALL=/dev/sda') && want.includes('VLAN=20'), want.join(' '));
    assert.deepEqual(await lines(pair.a), want);
  } finally {
    await source.destroy();
  }
});

test('import and render exit 1 and name the file and the reason for what they cannot take', () => {
  const dir = join(scratch.dir, 'bad-data');
  mkdirSync(join(dir, 'groups'), { recursive: true });
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  writeFileSync(join(dir, 'profiles', 'p.json'), JSON.stringify({ id: 'p', boot: { kernel: '/k' } }));
  writeFileSync(
    join(dir, 'groups', 'good.json'),
    JSON.stringify({ profile: 'p', selector: { mac: 'aa:bb:cc:dd:ee:01' } }),
  );
  writeFileSync(join(dir, 'groups', 'bad.json'), '{"profile": "p",}');
  const imported = metalbox(['import', dir]);
  assert.equal(imported.code, 1);
  assert.match(imported.stderr, /^error: groups\/bad\.json: invalid JSON \(.*\); Matchbox skips this file$/m);
  assert.match(
    imported.stdout,
    /kind: MatchboxGroup\nmetadata:\n {2}name: good\n/,
    'the valid files are still written',
  );

  const manifest = join(scratch.dir, 'bad.yaml');
  writeFileSync(
    manifest,
    'apiVersion: metalbox.io/v1alpha1\nkind: MatchboxGroup\nmetadata:\n  name: g\nspec:\n  profileRef: {name: p}\n  selector: {mac: "aa:bb"}\n',
  );
  const rendered = metalbox(['render', '-f', manifest]);
  assert.equal(rendered.code, 1);
  assert.equal(rendered.stdout, '');
  assert.match(
    rendered.stderr,
    new RegExp(
      `^error: ${manifest.replaceAll('.', '\\.')}#1: MatchboxGroup default/g: spec\\.selector(\\.mac)?: .*MAC address`,
      'm',
    ),
  );
});
