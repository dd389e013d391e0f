import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { normalizeMac } from '../../src/crds/common.ts';
import { CRD_DIR, crdFor, renderCrdFiles } from '../../src/crds/crd.ts';
import { BareMetalHostKind, KINDS, kindFor } from '../../src/crds/index.ts';
import { crdObjectSchema, NonStructuralSchemaError, structuralSchema } from '../../src/crds/openapi.ts';
import { validateObject } from '../../src/crds/validate.ts';
import {
  badManifests,
  validGroup,
  validHost,
  validProfile,
  validTalosConfig,
} from '../fixtures/bad-manifests.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const manifestsDir = join(root, 'manifests');

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  stringData?: Record<string, string>;
};

/** manifests/ (what `kubectl apply -f manifests/` applies) and the static groups kept beside it. */
function loadManifests(): { file: string; obj: Obj }[] {
  const out: { file: string; obj: Obj }[] = [];
  const files = [
    ...readdirSync(manifestsDir)
      .filter((f) => f.endsWith('.yaml'))
      .sort(),
    'static-groups/matchboxgroups.yaml',
  ];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(join(manifestsDir, file), 'utf8'))) {
      assert.equal(doc.errors.length, 0, `${file}: ${doc.errors.join('; ')}`);
      out.push({ file, obj: doc.toJS() as Obj });
    }
  }
  return out;
}

const SEED_ARGS = (config: string) => [
  'initrd=initramfs.xz',
  'init_on_alloc=1',
  'slab_nomerge',
  'pti=on',
  'console=tty0',
  'console=ttyS0',
  'printk.devkmsg=on',
  'talos.platform=metal',
  `talos.config=http://10.0.20.5:8080/assets/${config}`,
];

describe('seed manifests', () => {
  const manifests = loadManifests();
  const byKind = (kind: string) => manifests.filter((m) => m.obj.kind === kind).map((m) => m.obj);

  it('every metalbox.io manifest passes validation', () => {
    const metalbox = manifests.filter((m) => m.obj.apiVersion.startsWith('metalbox.io/'));
    assert.ok(metalbox.length >= 13, `expected the whole fleet, found ${metalbox.length} objects`);
    for (const { file, obj } of metalbox) {
      const result = validateObject(obj);
      assert.ok(
        result.ok,
        `${file} ${obj.kind}/${obj.metadata.name}: ${result.ok ? '' : result.errors.map((e) => e.message).join('; ')}`,
      );
    }
  });

  it('every manifest is a metalbox.io kind, a Secret or the Namespace, in metalbox-system', () => {
    for (const { file, obj } of manifests) {
      const known = kindFor(obj.apiVersion, obj.kind) !== undefined;
      const core = obj.apiVersion === 'v1' && (obj.kind === 'Secret' || obj.kind === 'Namespace');
      assert.ok(known || core, `${file}: unexpected ${obj.apiVersion} ${obj.kind}`);
      if (obj.kind !== 'Namespace')
        assert.equal(obj.metadata.namespace, 'metalbox-system', `${file} ${obj.metadata.name}`);
    }
  });

  it('the fleet is the seed: cp-01..03 and two workers with the seed MACs, addresses and hostnames', () => {
    const hosts = byKind('BareMetalHost');
    const summary = hosts.map((h) => {
      const spec = h.spec as {
        role: string;
        bootMACAddress: string;
        bmc: { address: string };
        network: { hostname: string; addresses: string[]; vlan: { id: number } };
      };
      return [
        h.metadata.name,
        spec.role,
        spec.bootMACAddress,
        spec.network.hostname,
        spec.network.addresses[0],
      ];
    });
    assert.deepEqual(summary, [
      ['cp-01', 'controlplane', 'aa:bb:cc:dd:ee:01', 'talos-cp-01', '10.0.20.10/24'],
      ['cp-02', 'controlplane', 'aa:bb:cc:dd:ee:02', 'talos-cp-02', '10.0.20.11/24'],
      ['cp-03', 'controlplane', 'aa:bb:cc:dd:ee:03', 'talos-cp-03', '10.0.20.12/24'],
      ['worker-01', 'worker', 'aa:bb:cc:dd:ee:11', 'talos-worker-01', '10.0.20.20/24'],
      ['worker-02', 'worker', 'aa:bb:cc:dd:ee:12', 'talos-worker-02', '10.0.20.21/24'],
    ]);
    for (const h of hosts) {
      const spec = h.spec as { bmc: { address: string }; network: { vlan: { id: number } } };
      assert.match(
        spec.bmc.address,
        /^[a-z+]+:\/\/10\.0\.10\.1[0-9]{2}[:/]/,
        `${h.metadata.name}: BMC on VLAN 10`,
      );
      assert.equal(spec.network.vlan.id, 20);
    }
  });

  it('the Talos profiles carry exactly the seed kernel, initrd and args', () => {
    const profiles = Object.fromEntries(byKind('MatchboxProfile').map((p) => [p.metadata.name, p.spec]));
    assert.deepEqual(Object.keys(profiles).sort(), ['talos-control-plane', 'talos-worker']);
    assert.deepEqual(profiles['talos-control-plane'], {
      displayName: 'Talos Linux - Control Plane',
      kernel: '/assets/vmlinuz',
      initrd: ['/assets/initramfs.xz'],
      args: SEED_ARGS('controlplane.yaml'),
    });
    assert.deepEqual(profiles['talos-worker']?.['args'], SEED_ARGS('worker.yaml'));
  });

  it('every reference resolves inside the manifests, and groups select the hosts by MAC', () => {
    const names = (kind: string) => new Set(byKind(kind).map((o) => o.metadata.name));
    const secrets = names('Secret');
    const profiles = names('MatchboxProfile');
    const talos = names('TalosMachineConfig');
    const hostMacs = new Map<string, string>();
    for (const h of byKind('BareMetalHost')) {
      const spec = h.spec as {
        role: string;
        bootMACAddress: string;
        bmc: { credentialsName: string };
        profileRef: { name: string };
        talosConfigRef: { name: string };
      };
      assert.ok(
        secrets.has(spec.bmc.credentialsName),
        `${h.metadata.name}: Secret ${spec.bmc.credentialsName}`,
      );
      assert.ok(profiles.has(spec.profileRef.name), `${h.metadata.name}: profile ${spec.profileRef.name}`);
      assert.ok(talos.has(spec.talosConfigRef.name), `${h.metadata.name}: ${spec.talosConfigRef.name}`);
      hostMacs.set(normalizeMac(spec.bootMACAddress)!, `${spec.role}:${spec.profileRef.name}`);
    }
    const groups = byKind('MatchboxGroup');
    assert.equal(groups.length, hostMacs.size);
    for (const g of groups) {
      const spec = g.spec as { profileRef: { name: string }; selector: { mac: string } };
      const host = hostMacs.get(normalizeMac(spec.selector.mac)!);
      assert.ok(host, `${g.metadata.name}: no host boots from ${spec.selector.mac}`);
      assert.ok(
        host.endsWith(`:${spec.profileRef.name}`),
        `${g.metadata.name}: profile differs from the host's`,
      );
    }
  });

  it('kubectl apply -f manifests/ ships no group that conflicts with the hosts beside it', () => {
    const top = manifests.filter((m) => !m.file.includes('/'));
    const hostMacs = new Set(
      top
        .filter((m) => m.obj.kind === 'BareMetalHost')
        .map((m) => normalizeMac((m.obj.spec as { bootMACAddress: string }).bootMACAddress)),
    );
    const clashing = top.filter(
      (m) =>
        m.obj.kind === 'MatchboxGroup' &&
        hostMacs.has(normalizeMac((m.obj.spec as { selector?: { mac?: string } }).selector?.mac ?? '')),
    );
    assert.deepEqual(
      clashing.map((m) => m.obj.metadata.name),
      [],
    );
  });

  it("the examples' Namespace carries the install's labels (a re-apply keeps pod security)", () => {
    const ns = manifests.filter((m) => m.obj.kind === 'Namespace');
    assert.equal(ns.length, 1);
    const deployed = parseAllDocuments(
      readFileSync(join(root, 'deploy/manager/namespace.yaml'), 'utf8'),
    )[0]!.toJS() as Obj;
    assert.equal(ns[0]!.obj.metadata.name, deployed.metadata.name);
    assert.deepEqual(ns[0]!.obj.metadata.labels, deployed.metadata.labels);
  });

  it('BMC Secrets are marked placeholders with username and password only', () => {
    const secrets = byKind('Secret');
    assert.equal(secrets.length, 5);
    for (const s of secrets) {
      assert.equal(s.metadata.labels?.['metalbox.io/placeholder'], 'true', s.metadata.name);
      assert.deepEqual(s.stringData, { username: 'CHANGE-ME', password: 'CHANGE-ME' }, s.metadata.name);
    }
  });
});

describe('bad manifests', () => {
  it('the table has at least 15 entries and covers every kind', () => {
    assert.ok(badManifests.length >= 15);
    const kinds = new Set(badManifests.map((b) => (b.manifest as { kind: string }).kind));
    assert.deepEqual([...kinds].sort(), KINDS.map((k) => k.kind).sort());
    assert.ok(badManifests.some((b) => b.caughtBy === 'cel'));
  });

  it('the valid bases of the table pass, so each entry fails for its one fault', () => {
    for (const base of [validHost(), validProfile(), validGroup(), validTalosConfig()]) {
      const result = validateObject(base);
      assert.ok(result.ok, result.ok ? '' : result.errors.map((e) => e.message).join('; '));
    }
  });

  for (const bad of badManifests) {
    it(`rejects ${bad.name} at ${bad.path}`, () => {
      const result = validateObject(bad.manifest);
      assert.equal(result.ok, false, 'accepted');
      if (result.ok) return;
      assert.deepEqual(
        result.errors.map((e) => e.path),
        [bad.path],
        result.errors.map((e) => e.message).join('; '),
      );
      const [error] = result.errors;
      assert.ok(error!.message.startsWith(`${bad.path}: `), error!.message);
      assert.equal(error!.reason, bad.reason, error!.message);
      if (bad.message !== undefined) assert.ok(error!.detail.endsWith(bad.message), error!.detail);
    });
  }
});

describe('validateObject', () => {
  it('applies the same defaults the CRD schema declares', () => {
    const result = validateObject(validHost());
    assert.ok(result.ok);
    const spec = (result.object as { spec: Record<string, unknown> }).spec;
    const schema = crdObjectSchema(BareMetalHostKind.schema) as {
      properties: { spec: { properties: Record<string, { default?: unknown }> } };
    };
    const declared = Object.entries(schema.properties.spec.properties).filter(
      ([, s]) => s.default !== undefined,
    );
    assert.deepEqual(
      declared.map(([k]) => k),
      ['bootTarget', 'powerPolicy', 'inspectionMode'],
    );
    for (const [key, s] of declared) assert.equal(spec[key], s.default, key);
    assert.deepEqual((spec['bmc'] as Record<string, unknown>)['disableCertificateVerification'], false);
    assert.deepEqual((spec['network'] as { bond: unknown }).bond, {
      name: 'bond0',
      mode: '802.3ad',
      members: [{ busPath: '0*:*:00.0' }, { busPath: '0*:*:00.1' }],
    });
  });

  it('accepts a boot MAC in hyphen form and upper case', () => {
    const host = validHost();
    (host['spec'] as Record<string, unknown>)['bootMACAddress'] = 'AA-BB-CC-DD-EE-F1';
    assert.ok(validateObject(host).ok);
  });

  it('rejects a misspelt spec field as an unknown field', () => {
    const host = validHost();
    (host['spec'] as Record<string, unknown>)['bootMacAddress'] = 'aa:bb:cc:dd:ee:f1';
    const result = validateObject(host);
    assert.ok(!result.ok);
    assert.deepEqual(
      result.errors.map((e) => [e.path, e.reason]),
      [['spec.bootMacAddress', 'FieldValueUnknown']],
    );
  });

  it('accepts the fields an apiserver adds to metadata', () => {
    const host = validHost();
    host['metadata'] = {
      ...(host['metadata'] as object),
      uid: '0b1c',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-01-02T15:04:05Z',
      managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
    };
    assert.ok(validateObject(host).ok);
  });

  it('requires a name or generateName', () => {
    const host = validHost();
    host['metadata'] = { namespace: 'metalbox-system' };
    const result = validateObject(host);
    assert.ok(!result.ok);
    assert.deepEqual(
      result.errors.map((e) => [e.path, e.reason]),
      [['metadata.name', 'FieldValueRequired']],
    );
  });

  it('names apiVersion or kind when the object is not a metalbox.io kind', () => {
    const wrongKind = validateObject({ ...validHost(), kind: 'BareMetalHosts' });
    assert.ok(!wrongKind.ok);
    assert.equal(wrongKind.errors[0]?.path, 'kind');
    const wrongVersion = validateObject({ ...validHost(), apiVersion: 'metal3.io/v1alpha1' });
    assert.ok(!wrongVersion.ok);
    assert.equal(wrongVersion.errors[0]?.path, 'apiVersion');
    assert.equal(validateObject('nope').ok, false);
  });

  it('does not echo long values, so configuration text never lands in an error', () => {
    const profile = validProfile();
    const secretish = `talos.config=${'x'.repeat(80)} token=abc`;
    (profile['spec'] as Record<string, unknown>)['args'] = [secretish];
    const result = validateObject(profile);
    assert.ok(!result.ok);
    assert.equal(result.errors[0]?.path, 'spec.args[0]');
    assert.ok(!result.errors[0]!.message.includes('xxxx'), result.errors[0]!.message);
  });

  it('validates status too (stores validate status writes)', () => {
    const host = validHost();
    host['status'] = { provisioning: { state: 'provisioned' }, errorCount: -1 };
    const result = validateObject(host);
    assert.ok(!result.ok);
    assert.deepEqual(
      result.errors.map((e) => e.path),
      ['status.errorCount'],
    );
  });
});

describe('normalizeMac', () => {
  it('gives the lowercase colon form for either notation and rejects non-MACs', () => {
    assert.equal(normalizeMac('AA-BB-CC-DD-EE-01'), 'aa:bb:cc:dd:ee:01');
    assert.equal(normalizeMac('aa:BB:cc:DD:ee:01'), 'aa:bb:cc:dd:ee:01');
    assert.equal(normalizeMac('aa:bb-cc:dd:ee:01'), undefined);
    assert.equal(normalizeMac('aabb.ccdd.ee01'), undefined);
  });
});

describe('CRD generation', () => {
  it('the checked-in deploy/crds equals freshly generated output', () => {
    const files = renderCrdFiles();
    for (const [path, content] of files) {
      assert.equal(readFileSync(join(root, path), 'utf8'), content, `${path} is stale: run npm run gen:crds`);
    }
    const onDisk = readdirSync(join(root, CRD_DIR)).map((f) => `${CRD_DIR}/${f}`);
    assert.deepEqual(onDisk.sort(), [...files.keys()].sort());
  });

  it('generation is deterministic', () => {
    assert.deepEqual([...renderCrdFiles()], [...renderCrdFiles()]);
  });

  it('gen-crds --check names the file that differs and exits non-zero', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'metalbox-crds-'));
    try {
      cpSync(join(root, CRD_DIR), join(scratch, CRD_DIR), { recursive: true });
      const target = join(scratch, CRD_DIR, 'matchboxgroups.metalbox.io.yaml');
      writeFileSync(target, readFileSync(target, 'utf8').replace('maxProperties: 16', 'maxProperties: 17'));
      const run = spawnSync('bash', ['scripts/node', 'scripts/gen-crds.ts', '--check', `--root=${scratch}`], {
        cwd: root,
        encoding: 'utf8',
      });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /deploy\/crds\/matchboxgroups\.metalbox\.io\.yaml: differs/);
      assert.doesNotMatch(run.stderr, /baremetalhosts/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('each CRD has the status subresource, names, columns and a structural schema', () => {
    for (const kind of KINDS) {
      const crd = crdFor(kind);
      assert.equal(crd.metadata.name, `${kind.plural}.metalbox.io`);
      const [version] = crd.spec.versions;
      assert.deepEqual(version?.subresources, { status: {} });
      assert.deepEqual(crd.spec.names.categories, ['metalbox']);
      assertStructural(version!.schema.openAPIV3Schema, kind.kind);
    }
    const bmh = crdFor(BareMetalHostKind);
    assert.deepEqual(bmh.spec.names.shortNames, ['bmh']);
    assert.deepEqual(
      bmh.spec.versions[0]!.additionalPrinterColumns.map((c) => c['name']),
      ['State', 'Online', 'Powered', 'BMC', 'MAC', 'Error', 'Ready', 'Reason', 'Paused', 'Age'],
    );
    // Every kind shows its health and why, and reads back "not observed yet" before a controller
    // wrote anything (kstatus: InProgress, not Current).
    for (const kind of KINDS) {
      const version = crdFor(kind).spec.versions[0]!;
      const names = version.additionalPrinterColumns.map((c) => c['name']);
      assert.ok(names.includes('Ready') && names.includes('Reason'), `${kind.kind}: ${names.join(', ')}`);
      const status = (version.schema.openAPIV3Schema.properties as Record<string, { default?: unknown }>)
        .status;
      assert.deepEqual(status?.default, { observedGeneration: 0 }, kind.kind);
    }
  });

  it('the CRD carries each cross-field rule with the message zod reports', () => {
    const text = [...renderCrdFiles().values()].join('\n');
    for (const bad of badManifests.filter((b) => b.caughtBy === 'cel')) {
      assert.ok(text.includes(`message: ${bad.message}`), `${bad.message} missing from the CRDs`);
    }
  });

  it('refuses zod constructs a structural schema cannot express, naming the field', () => {
    assert.throws(
      () => structuralSchema(z.object({ spec: z.object({ port: z.union([z.string(), z.number()]) }) })),
      (e: unknown) => e instanceof NonStructuralSchemaError && e.schemaPath === '.spec.port',
    );
    assert.throws(
      () => structuralSchema(z.object({ data: z.unknown() })),
      (e: unknown) => e instanceof NonStructuralSchemaError && e.schemaPath === '.data',
    );
    assert.throws(
      () => structuralSchema(z.object({ tags: z.record(z.string(), z.unknown()) })),
      (e: unknown) => e instanceof NonStructuralSchemaError && e.schemaPath === '.tags',
    );
  });
});

/** Every node typed (or preserving unknown fields), no forbidden keywords, no additionalProperties: false. */
function assertStructural(node: Record<string, unknown>, path: string): void {
  for (const key of [
    'anyOf',
    'oneOf',
    'allOf',
    'not',
    '$ref',
    '$schema',
    'const',
    'propertyNames',
    'uniqueItems',
  ]) {
    assert.ok(!(key in node), `${path}: ${key}`);
  }
  assert.notEqual(node['additionalProperties'], false, `${path}: additionalProperties false`);
  assert.ok(
    node['type'] !== undefined || node['x-kubernetes-preserve-unknown-fields'] === true,
    `${path}: untyped`,
  );
  for (const [name, child] of Object.entries(
    (node['properties'] as Record<string, Record<string, unknown>>) ?? {},
  )) {
    assertStructural(child, `${path}.${name}`);
  }
  if (node['items']) assertStructural(node['items'] as Record<string, unknown>, `${path}[*]`);
  if (typeof node['additionalProperties'] === 'object') {
    assertStructural(node['additionalProperties'] as Record<string, unknown>, `${path}[*]`);
  }
}
