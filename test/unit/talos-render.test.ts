import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import type { BareMetalHost } from '../../src/crds/baremetalhost.ts';
import { TalosConfigError } from '../../src/talos/errors.ts';
import { type RenderInput, renderHostConfig } from '../../src/talos/render.ts';
import {
  type BaseVersion,
  baseConfig,
  GOLDEN_EVENT_SINK,
  goldenPath,
  seedHosts,
  seedTalosConfig,
} from '../fixtures/talos/seed.ts';

// UPDATE_GOLDEN=1 bash scripts/test test/unit/talos-render.test.ts rewrites the golden files.
const update = process.env.UPDATE_GOLDEN === '1';

function input(host: BareMetalHost, version: BaseVersion, extra: Partial<RenderInput> = {}): RenderInput {
  const tmc = seedTalosConfig(version);
  return {
    host: { name: host.metadata.name ?? '', spec: host.spec },
    spec: tmc.spec,
    base: {
      text: baseConfig(version, host.spec.role),
      field: `Secret mycluster-base-config key ${host.spec.role}.yaml`,
    },
    rolePatches: [],
    hostPatches: [],
    eventSinkEndpoint: GOLDEN_EVENT_SINK,
    ...extra,
  };
}

// biome-ignore lint/suspicious/noExplicitAny: tests walk the parsed YAML freely.
const docs = (config: string) => parseAllDocuments(config).map((d) => d.toJS() as Record<string, any>);
const seed = seedHosts();
const cp01 = seed.find((h) => h.metadata.name === 'cp-01')!;

for (const version of ['v1.10', 'v1.12'] as const) {
  for (const host of seed) {
    test(`golden: ${host.metadata.name} renders to its ${version} golden file`, () => {
      const { config } = renderHostConfig(input(host, version));
      const path = goldenPath(version, host.metadata.name ?? '');
      if (update) {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, config);
      }
      assert.equal(config, readFileSync(path, 'utf8'));
    });
  }
}

test('v1.10 form: the host network is .machine.network (bond by bus path, VLAN 20, route, DNS) and no network documents', () => {
  const [machine, ...rest] = docs(renderHostConfig(input(cp01, 'v1.10')).config);
  assert.deepEqual(machine!.machine.network, {
    hostname: 'talos-cp-01',
    interfaces: [
      {
        interface: 'bond0',
        bond: {
          mode: '802.3ad',
          lacpRate: 'fast',
          deviceSelectors: [{ busPath: '0*:*:00.0' }, { busPath: '0*:*:00.1' }],
        },
        mtu: 1500,
        vlans: [
          {
            vlanId: 20,
            addresses: ['10.0.20.10/24'],
            routes: [{ network: '0.0.0.0/0', gateway: '10.0.20.1' }],
          },
        ],
      },
    ],
    nameservers: ['10.0.20.1'],
  });
  assert.deepEqual(machine!.machine.install, {
    disk: '/dev/sda',
    image: 'ghcr.io/siderolabs/installer:v1.10.6',
    wipe: true,
  });
  assert.deepEqual(
    rest.map((d) => d.kind),
    ['EventSinkConfig'],
  );
});

test('v1.12 form: hostname with auto off, aliases, 802.3ad bond with fast LACP, VLAN with address and gateway, resolver', () => {
  const all = docs(renderHostConfig(input(cp01, 'v1.12')).config);
  const byKind = (kind: string) => all.filter((d) => d.kind === kind);
  assert.deepEqual(all[0]!.machine.network, {}, 'the v1alpha1 document carries no network');
  assert.deepEqual(byKind('HostnameConfig'), [
    { apiVersion: 'v1alpha1', kind: 'HostnameConfig', auto: 'off', hostname: 'talos-cp-01' },
  ]);
  assert.deepEqual(
    byKind('LinkAliasConfig').map((d) => d.selector.match),
    ['glob("0*:*:00.0", link.bus_path)', 'glob("0*:*:00.1", link.bus_path)'],
  );
  const [bond] = byKind('BondConfig');
  assert.deepEqual(bond, {
    apiVersion: 'v1alpha1',
    kind: 'BondConfig',
    name: 'bond0',
    links: ['bond0-port0', 'bond0-port1'],
    bondMode: '802.3ad',
    lacpRate: 'fast',
    mtu: 1500,
    up: true,
  });
  const [vlan] = byKind('VLANConfig');
  assert.deepEqual(vlan, {
    apiVersion: 'v1alpha1',
    kind: 'VLANConfig',
    name: 'bond0.20',
    vlanID: 20,
    parent: 'bond0',
    up: true,
    addresses: [{ address: '10.0.20.10/24' }],
    routes: [{ gateway: '10.0.20.1' }],
  });
  assert.deepEqual(byKind('ResolverConfig')[0]!.nameservers, [{ address: '10.0.20.1' }]);
  assert.equal(byKind('DHCPv4Config').length, 0, 'static addressing: no DHCP');
});

function withNetwork(
  host: BareMetalHost,
  network: BareMetalHost['spec']['network'],
  bootMAC?: string,
): BareMetalHost {
  return { ...host, spec: { ...host.spec, network, ...(bootMAC ? { bootMACAddress: bootMAC } : {}) } };
}

test('v1.12: a boot NIC outside a bond of known MACs keeps DHCP; members are aliased by permanent MAC', () => {
  const host = withNetwork(cp01, {
    hostname: 'edge-01',
    bond: {
      name: 'bond0',
      mode: '802.3ad',
      lacpRate: 'fast',
      members: [{ mac: 'AA-BB-CC-00-00-01' }, { mac: 'aa:bb:cc:00:00:02' }],
    },
    vlan: { id: 20 },
    addresses: ['10.0.20.30/24'],
  });
  const all = docs(renderHostConfig(input(host, 'v1.12')).config);
  const aliases = all.filter((d) => d.kind === 'LinkAliasConfig').map((d) => [d.name, d.selector.match]);
  assert.deepEqual(aliases, [
    ['boot0', 'mac(link.permanent_addr) == "aa:bb:cc:dd:ee:01"'],
    ['bond0-port0', 'mac(link.permanent_addr) == "aa:bb:cc:00:00:01"'],
    ['bond0-port1', 'mac(link.permanent_addr) == "aa:bb:cc:00:00:02"'],
  ]);
  assert.deepEqual(
    all.filter((d) => d.kind === 'DHCPv4Config').map((d) => d.name),
    ['boot0'],
  );
});

test('v1.12: a bond containing the boot NIC gets no extra DHCP; without addresses the VLAN runs DHCP', () => {
  const host = withNetwork(cp01, {
    bond: {
      name: 'bond0',
      mode: '802.3ad',
      members: [{ mac: 'aa:bb:cc:dd:ee:01' }, { mac: 'aa:bb:cc:00:00:02' }],
    },
    vlan: { id: 20 },
  });
  const all = docs(renderHostConfig(input(host, 'v1.12')).config);
  assert.deepEqual(
    all.filter((d) => d.kind === 'DHCPv4Config').map((d) => d.name),
    ['bond0.20'],
  );
  assert.equal(
    all.filter((d) => d.kind === 'HostnameConfig')[0]!.auto,
    'stable',
    'no hostname: the base HostnameConfig stays',
  );
});

test('v1.10: MAC members select by permanentAddr, and a separate boot NIC keeps DHCP', () => {
  const host = withNetwork(cp01, {
    bond: {
      name: 'bond0',
      mode: '802.3ad',
      members: [{ mac: 'aa:bb:cc:00:00:01' }, { mac: 'aa:bb:cc:00:00:02' }],
    },
    addresses: ['10.0.20.30/24'],
  });
  const [machine] = docs(renderHostConfig(input(host, 'v1.10')).config);
  const interfaces = machine!.machine.network.interfaces;
  assert.deepEqual(interfaces[0].bond.deviceSelectors, [
    { permanentAddr: 'aa:bb:cc:00:00:01' },
    { permanentAddr: 'aa:bb:cc:00:00:02' },
  ]);
  assert.deepEqual(interfaces[0].addresses, ['10.0.20.30/24']);
  assert.deepEqual(interfaces[1], { deviceSelector: { hardwareAddr: 'aa:bb:cc:dd:ee:01' }, dhcp: true });
});

test('the host installDisk overrides the TalosMachineConfig disk, and a disk selector replaces the base disk', () => {
  const host = { ...cp01, spec: { ...cp01.spec, installDisk: '/dev/nvme0n1' } };
  const [a] = docs(renderHostConfig(input(host, 'v1.12')).config);
  assert.equal(a!.machine.install.disk, '/dev/nvme0n1');
  const base = input(cp01, 'v1.12');
  const { installDisk: _, ...rest } = base.spec;
  const [b] = docs(
    renderHostConfig({ ...base, spec: { ...rest, installDiskSelector: { type: 'nvme', size: '>= 100GB' } } })
      .config,
  );
  assert.equal(b!.machine.install.disk, undefined);
  assert.deepEqual(b!.machine.install.diskSelector, { type: 'nvme', size: '>= 100GB' });
});

test('role patches apply before the host documents and host patches after them (strategic merge)', () => {
  const rendered = renderHostConfig(
    input(cp01, 'v1.12', {
      rolePatches: [
        {
          field: 'spec.patches.all[0].inline',
          text: 'machine:\n  sysctls:\n    net.core.somaxconn: "65535"\n',
        },
        {
          field: 'spec.patches.controlplane[0].inline',
          text: 'apiVersion: v1alpha1\nkind: TimeSyncConfig\nntp:\n  servers: [time.example.org]\n',
        },
      ],
      hostPatches: [
        {
          field: 'spec.hostPatches[0].patches[0].inline',
          text: 'apiVersion: v1alpha1\nkind: BondConfig\nname: bond0\nmiimon: 100\n',
        },
        {
          field: 'spec.hostPatches[0].patches[1].inline',
          text: 'cluster:\n  network:\n    podSubnets: [10.250.0.0/16]\n',
        },
      ],
    }),
  );
  const all = docs(rendered.config);
  assert.equal(all[0]!.machine.sysctls['net.core.somaxconn'], '65535');
  assert.deepEqual(
    all[0]!.cluster.network.podSubnets,
    ['10.250.0.0/16'],
    'podSubnets are replaced, not appended',
  );
  const bond = all.find((d) => d.kind === 'BondConfig')!;
  assert.equal(bond.miimon, 100);
  assert.equal(bond.lacpRate, 'fast', 'the host patch merged into the typed document');
  assert.ok(rendered.documents.includes('TimeSyncConfig'));
});

test('$patch: delete removes a document, a list element and a field', () => {
  const rendered = renderHostConfig(
    input(cp01, 'v1.12', {
      hostPatches: [
        { field: 'p0', text: 'apiVersion: v1alpha1\nkind: ResolverConfig\n$patch: delete\n' },
        { field: 'p1', text: 'machine:\n  install:\n    wipe:\n      $patch: delete\n' },
      ],
    }),
  );
  const all = docs(rendered.config);
  assert.equal(
    all.some((d) => d.kind === 'ResolverConfig'),
    false,
  );
  assert.equal(all[0]!.machine.install.wipe, undefined);
});

function rejects(fn: () => unknown, field: string | RegExp, problem: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TalosConfigError, `expected TalosConfigError, got ${String(e)}`);
    if (typeof field === 'string') assert.equal(e.field, field);
    else assert.match(e.field, field);
    assert.match(e.problem, problem);
    return true;
  });
}

test('an RFC 6902 patch is refused, naming the patch field', () => {
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.12', {
          rolePatches: [
            { field: 'spec.patches.all[0].inline', text: '- op: add\n  path: /machine/foo\n  value: 1\n' },
          ],
        }),
      ),
    'spec.patches.all[0].inline',
    /RFC 6902/,
  );
});

test('a patch holding the same document twice is a duplicate-document error', () => {
  const text =
    'apiVersion: v1alpha1\nkind: LinkConfig\nname: eth9\nmtu: 9000\n---\napiVersion: v1alpha1\nkind: LinkConfig\nname: eth9\nup: true\n';
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.12', { rolePatches: [{ field: 'spec.patches.worker[0].inline', text }] }),
      ),
    'spec.patches.worker[0].inline',
    /duplicate document.*LinkConfig\/eth9/,
  );
});

test('a base config holding a document twice is refused naming its Secret key', () => {
  const base = {
    text: `${baseConfig('v1.12', 'controlplane')}\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n`,
    field: 'Secret x key controlplane.yaml',
  };
  rejects(
    () => renderHostConfig(input(cp01, 'v1.12', { base })),
    'Secret x key controlplane.yaml',
    /duplicate document.*HostnameConfig/,
  );
});

test('a role patch defining the bond the host spec defines is a duplicate document naming the host field', () => {
  const text =
    'apiVersion: v1alpha1\nkind: BondConfig\nname: bond0\nlinks: [eth0]\nbondMode: active-backup\n';
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.12', { rolePatches: [{ field: 'spec.patches.all[0].inline', text }] }),
      ),
    'BareMetalHost cp-01 spec.network.bond',
    /duplicate document BondConfig\/bond0: spec.patches.all\[0\].inline already defines it/,
  );
});

test('a LinkConfig and a BondConfig with one name are a link-name clash naming both fields', () => {
  const text = 'apiVersion: v1alpha1\nkind: LinkConfig\nname: bond0\nmtu: 9000\n';
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.12', { rolePatches: [{ field: 'spec.patches.all[0].inline', text }] }),
      ),
    'BareMetalHost cp-01 spec.network.bond',
    /link name bond0 clash: BondConfig here and LinkConfig in spec.patches.all\[0\].inline/,
  );
});

test('v1.10: an interface a role patch already configures is a link-name clash', () => {
  const text = 'machine:\n  network:\n    interfaces:\n      - interface: bond0\n        dhcp: true\n';
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.10', { rolePatches: [{ field: 'spec.patches.all[0].inline', text }] }),
      ),
    'BareMetalHost cp-01 spec.network.bond',
    /link bond0 is also configured by machine.network.interfaces\[0\]/,
  );
});

test('v1.10: a v1.12 network document in a patch is refused (older nodes reject unknown kinds)', () => {
  const text = 'apiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n';
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.10', { hostPatches: [{ field: 'spec.hostPatches[0].patches[0].inline', text }] }),
      ),
    'spec.hostPatches[0].patches[0].inline',
    /needs Talos v1.12 but spec.talosVersion is v1.10/,
  );
});

test('v1.12: .machine.network in a role patch conflicts with the host network documents', () => {
  const text = 'machine:\n  network:\n    nameservers: [1.1.1.1]\n';
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.12', { rolePatches: [{ field: 'spec.patches.all[0].inline', text }] }),
      ),
    'BareMetalHost cp-01 spec.network.nameservers',
    /machine.network.nameservers is set/,
  );
});

test('a worker base under the controlplane key and a cluster name mismatch are refused', () => {
  rejects(
    () =>
      renderHostConfig(
        input(cp01, 'v1.12', {
          base: { text: baseConfig('v1.12', 'worker'), field: 'Secret x key controlplane.yaml' },
        }),
      ),
    'Secret x key controlplane.yaml',
    /machine.type is "worker"/,
  );
  const i = input(cp01, 'v1.12');
  rejects(
    () => renderHostConfig({ ...i, spec: { ...i.spec, clusterName: 'other' } }),
    'spec.clusterName',
    /cluster.clusterName/,
  );
});

test('YAML errors give position only: no source text (it may hold keys) reaches the message', () => {
  const text = `machine:\n  token: ${'s3cr3t'}-value\n  token: again\n`;
  assert.throws(
    () => renderHostConfig(input(cp01, 'v1.12', { hostPatches: [{ field: 'p', text }] })),
    (e: unknown) =>
      e instanceof TalosConfigError && /line 3/.test(e.message) && !e.message.includes('s3cr3t'),
  );
});

test('a contract newer than v1.13 is refused naming spec.talosVersion', () => {
  rejects(
    () => renderHostConfig(input(cp01, 'v1.12', { spec: { ...seedTalosConfig('v1.14').spec } })),
    'spec.talosVersion',
    /not supported yet/,
  );
});

test('rendering is deterministic and the hash changes with the host address', () => {
  const a = renderHostConfig(input(cp01, 'v1.12'));
  assert.equal(renderHostConfig(input(cp01, 'v1.12')).hash, a.hash);
  const moved = withNetwork(cp01, { ...cp01.spec.network!, addresses: ['10.0.20.99/24'] });
  assert.notEqual(renderHostConfig(input(moved, 'v1.12')).hash, a.hash);
});
