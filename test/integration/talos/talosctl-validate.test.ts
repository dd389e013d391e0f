// Every rendered config passes the real `talosctl validate --mode metal` (talosctl built by
// scripts/setup): the seed's golden files in both forms, and renders of the other network shapes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import type { BareMetalHost } from '../../../src/crds/baremetalhost.ts';
import { renderHostConfig } from '../../../src/talos/render.ts';
import { peerBinary } from '../../env/peers.ts';
import {
  type BaseVersion,
  baseConfig,
  GOLDEN_EVENT_SINK,
  goldenPath,
  seedHosts,
  seedTalosConfig,
} from '../../fixtures/talos/seed.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'talosctl-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function validate(path: string): Promise<string> {
  try {
    const { stdout } = await run(peerBinary('talosctl'), ['validate', '--mode', 'metal', '--config', path]);
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    assert.fail(`talosctl validate rejected ${path}:\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

for (const version of ['v1.10', 'v1.12'] as const) {
  test(`talosctl validate --mode metal accepts the five ${version} golden configs`, async () => {
    for (const host of seedHosts()) {
      const out = await validate(goldenPath(version, host.metadata.name ?? ''));
      assert.match(out, /is valid for metal mode/);
    }
  });
}

const cp01 = seedHosts()[0]!;
const variants: Record<string, BareMetalHost['spec']['network']> = {
  'bond by MAC, separate boot NIC keeps DHCP': {
    hostname: 'edge-01',
    bond: {
      name: 'bond0',
      mode: '802.3ad',
      lacpRate: 'fast',
      xmitHashPolicy: 'layer3+4',
      miimon: 100,
      members: [{ mac: 'aa:bb:cc:00:00:01' }, { mac: 'aa:bb:cc:00:00:02' }],
    },
    vlan: { id: 20 },
    addresses: ['10.0.20.30/24'],
    routes: [
      { network: '0.0.0.0/0', gateway: '10.0.20.1' },
      { network: '10.9.0.0/16', gateway: '10.0.20.254', metric: 50 },
    ],
    nameservers: ['10.0.20.1', '10.0.20.2'],
  },
  'bond with DHCP on the VLAN': {
    bond: {
      name: 'bond0',
      mode: 'active-backup',
      members: [{ mac: 'aa:bb:cc:dd:ee:01' }, { busPath: '0000:05:00.1' }],
    },
    vlan: { id: 30 },
  },
  'static address on the boot NIC, no bond': {
    hostname: 'plain-01',
    addresses: ['192.168.1.10/24'],
    routes: [{ network: '0.0.0.0/0', gateway: '192.168.1.1' }],
  },
  'VLAN on a named NIC, no bond': { vlan: { id: 40, parent: 'eth1' }, addresses: ['10.0.40.5/24'] },
};

for (const [name, network] of Object.entries(variants)) {
  for (const version of ['v1.10', 'v1.12'] as BaseVersion[]) {
    test(`talosctl validate accepts a ${version} render: ${name}`, async () => {
      const host = { ...cp01, spec: { ...cp01.spec, network } };
      const { config } = renderHostConfig({
        host: { name: 'variant', spec: host.spec },
        spec: seedTalosConfig(version).spec,
        base: { text: baseConfig(version, 'controlplane'), field: 'base' },
        rolePatches: [],
        hostPatches: [],
        eventSinkEndpoint: GOLDEN_EVENT_SINK,
      });
      const path = join(dir, `${version}-${name.replaceAll(/[^a-z0-9]+/gi, '-')}.yaml`);
      writeFileSync(path, config);
      assert.match(await validate(path), /is valid for metal mode/);
    });
  }
}

test('talosctl really validates: the HostnameConfig trap (auto stable beside a hostname) is rejected', async () => {
  const golden = readFileSync(goldenPath('v1.12', 'cp-01'), 'utf8');
  const path = join(dir, 'trap.yaml');
  writeFileSync(path, golden.replace(/^auto: off$/m, 'auto: stable'));
  await assert.rejects(
    run(peerBinary('talosctl'), ['validate', '--mode', 'metal', '--config', path]),
    (e: { stderr?: string; stdout?: string }) =>
      /'auto' and 'hostname' cannot be set at the same time/.test(`${e.stderr}${e.stdout}`),
  );
});

test('the talosctl hint in manifests/talosmachineconfig.yaml gives base configs that render for every seed host', async () => {
  const manifest = readFileSync(
    new URL('../../../manifests/talosmachineconfig.yaml', import.meta.url),
    'utf8',
  );
  const commands = [...manifest.matchAll(/^#\s+(talosctl .+)$/gm)].map((m) => m[1]!.trim().split(/\s+/));
  assert.ok(commands.length >= 2, 'the manifest says how to make the base configs');
  const work = join(dir, 'hint');
  mkdirSync(work);
  for (const [, ...args] of commands) {
    await run(peerBinary('talosctl'), args, { cwd: work }).catch((e: { stderr?: string }) =>
      assert.fail(`talosctl ${args.join(' ')}: ${e.stderr}`),
    );
  }
  // The Secret the hint creates: its --from-file names are the keys the spec reads.
  const secretLine = /^#\s+(kubectl .* create secret generic (\S+) .+)$/m.exec(manifest);
  assert.ok(secretLine, 'the manifest says how to store them');
  const tmc = seedTalosConfig();
  assert.equal(secretLine[2], tmc.spec.baseConfigSecretRef.name);
  const files = [...secretLine[1]!.matchAll(/--from-file=(\S+)/g)].map((m) => m[1]!);
  const { controlplaneKey, workerKey } = tmc.spec.baseConfigSecretRef;
  assert.deepEqual(files.sort(), [controlplaneKey, workerKey].sort());
  for (const host of seedHosts()) {
    const key = host.spec.role === 'controlplane' ? controlplaneKey : workerKey;
    const { config } = renderHostConfig({
      host: { name: host.metadata.name ?? '', spec: host.spec },
      spec: tmc.spec,
      base: { text: readFileSync(join(work, key!), 'utf8'), field: `baseConfigSecretRef ${key}` },
      rolePatches: [],
      hostPatches: [],
      eventSinkEndpoint: GOLDEN_EVENT_SINK,
    });
    const path = join(work, `${host.metadata.name}.rendered.yaml`);
    writeFileSync(path, config);
    assert.match(await validate(path), /is valid for metal mode/);
  }
});
