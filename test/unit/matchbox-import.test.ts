import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { importDataDir, kubeName, toYamlStream } from '../../src/matchbox/import.ts';
import { renderManifests } from '../../src/matchbox/render-set.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'metalbox-import-'));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const profileJson = (id: string, extra: object = {}) =>
  JSON.stringify({
    id,
    boot: { kernel: '/assets/vmlinuz', initrd: ['/assets/initramfs.xz'], args: ['talos.platform=metal'] },
    ...extra,
  });

test('profiles and groups become manifests that render back to the same boot config', () => {
  const dir = dataDir({
    'profiles/talos-control-plane.json': profileJson('talos-control-plane', {
      name: 'Talos Linux - Control Plane',
    }),
    'groups/cp-01.json': JSON.stringify({
      id: 'talos-cp-01',
      name: 'Control Plane Node 1',
      profile: 'talos-control-plane',
      selector: { mac: 'AA-BB-CC-DD-EE-01' },
      metadata: { hostname: 'cp-01' },
    }),
  });
  const result = importDataDir(dir, { namespace: 'metal' });
  assert.deepEqual([result.errors, result.warnings], [[], []]);
  assert.deepEqual(
    result.manifests.map((m) => `${m.kind}/${m.metadata.name}`),
    ['MatchboxProfile/talos-control-plane', 'MatchboxGroup/cp-01'],
  );
  assert.deepEqual(result.manifests[1], {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'MatchboxGroup',
    metadata: {
      name: 'cp-01',
      namespace: 'metal',
      annotations: { 'metalbox.io/imported-from': 'groups/cp-01.json' },
    },
    spec: {
      profileRef: { name: 'talos-control-plane' },
      displayName: 'Control Plane Node 1',
      selector: { mac: 'aa:bb:cc:dd:ee:01' },
      metadata: { hostname: 'cp-01' },
    },
  });
  assert.deepEqual(result.sourceIds, { profiles: ['talos-control-plane'], groups: ['talos-cp-01'] });

  // Through YAML and render, as `metalbox import | metalbox render -f -` does.
  const documents = parseAllDocuments(toYamlStream(result.manifests, 'header')).map((d, i) => ({
    source: `#${i}`,
    object: d.toJS(),
  }));
  const rendered = renderManifests(documents, { defaultNamespace: 'default' });
  assert.deepEqual(rendered.errors, []);
  assert.deepEqual(rendered.profiles[0]!.boot, {
    kernel: '/assets/vmlinuz',
    initrd: ['/assets/initramfs.xz'],
    args: ['talos.platform=metal'],
  });
  assert.equal(rendered.groups[0]!.profile, rendered.profiles[0]!.id);
});

test('a generic template becomes a Secret the profile refers to; unreferenced ones are reported', () => {
  const dir = dataDir({
    'profiles/cp.json': profileJson('cp', { generic_id: 'cp.yaml.tmpl' }),
    'profiles/cp2.json': profileJson('cp2', { generic_id: 'cp.yaml.tmpl' }),
    'generic/cp.yaml.tmpl': 'hostname: {{.hostname}}\n',
    'generic/old.tmpl': 'unused',
  });
  const result = importDataDir(dir, { namespace: 'metal' });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.warnings, [
    { file: 'generic/old.tmpl', message: 'no profile refers to it; not imported' },
  ]);
  const secrets = result.manifests.filter((m) => m.kind === 'Secret');
  assert.equal(secrets.length, 1, 'one Secret per template file');
  assert.deepEqual(secrets[0], {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'matchbox-generic-cp.yaml.tmpl',
      namespace: 'metal',
      annotations: { 'metalbox.io/imported-from': 'generic/cp.yaml.tmpl' },
    },
    type: 'Opaque',
    stringData: { template: 'hostname: {{.hostname}}\n' },
  });
  const profile = result.manifests.find((m) => m.kind === 'MatchboxProfile' && m.metadata.name === 'cp');
  assert.deepEqual((profile as { spec: { genericConfig: unknown } }).spec.genericConfig, {
    secretRef: { name: 'matchbox-generic-cp.yaml.tmpl', key: 'template' },
  });
});

test('every file that cannot be imported is reported with its name and reason', () => {
  const dir = dataDir({
    'profiles/trailing-comma.json': '{"id": "x", "boot": {"kernel": "/k",}}',
    'profiles/no-id.json': JSON.stringify({ boot: { kernel: '/k' } }),
    'profiles/ignition.json': JSON.stringify({ id: 'ignition', ignition_id: 'a.ign' }),
    'profiles/old.json': JSON.stringify({ id: 'old', boot: { kernel: '/k', cmdline: { a: 'b' } } }),
    'profiles/missing-generic.json': JSON.stringify({ id: 'missing-generic', generic_id: 'nope' }),
    'profiles/notes.txt': 'hello',
    'groups/bad-mac.json': JSON.stringify({ id: 'g', profile: 'p', selector: { mac: 'aa:bb' } }),
    'groups/no-profile.json': JSON.stringify({ id: 'g2', selector: {} }),
    'groups/array.json': '[1]',
    'groups/metadata.json': JSON.stringify({ id: 'g3', profile: 'p', metadata: [1] }),
  });
  const result = importDataDir(dir, { namespace: 'metal' });
  assert.deepEqual(result.manifests, []);
  const byFile = Object.fromEntries(result.errors.map((e) => [e.file, e.message]));
  assert.match(byFile['profiles/trailing-comma.json']!, /^invalid JSON \(.*\); Matchbox skips this file$/);
  assert.equal(byFile['profiles/no-id.json'], 'has no "id"; Matchbox refuses to serve a profile without one');
  assert.equal(
    byFile['profiles/ignition.json'],
    'uses "ignition_id", which metalbox profiles do not support (only generic_id)',
  );
  assert.equal(byFile['profiles/old.json'], '"boot.cmdline" was removed in Matchbox v0.6; use "boot.args"');
  assert.match(byFile['profiles/missing-generic.json']!, /names generic\/nope, which does not exist/);
  assert.equal(byFile['profiles/notes.txt'], 'is not a .json file; Matchbox only reads profiles/<id>.json');
  assert.equal(
    byFile['groups/bad-mac.json'],
    '"selector.mac" is "aa:bb", not a MAC address; Matchbox skips this group',
  );
  assert.equal(
    byFile['groups/no-profile.json'],
    'has no "profile"; Matchbox cannot serve machines it matches',
  );
  assert.equal(byFile['groups/array.json'], 'is not a JSON object; Matchbox skips this file');
  assert.equal(byFile['groups/metadata.json'], '"metadata" must be a JSON object');
  assert.equal(result.errors.length, 10);
});

test("the design document's literal tree (profile file named apart from its id) is flagged", () => {
  const dir = dataDir({
    'profiles/control-plane.json': profileJson('talos-control-plane'),
    'groups/cp-01.json': JSON.stringify({
      id: 'talos-cp-01',
      profile: 'talos-control-plane',
      selector: { mac: 'aa:bb:cc:dd:ee:01' },
    }),
  });
  const result = importDataDir(dir, { namespace: 'metal' });
  assert.deepEqual(result.warnings, [
    {
      file: 'profiles/control-plane.json',
      message: '"id" is "talos-control-plane" but groups find it by its file name "control-plane"',
    },
    {
      file: 'groups/cp-01.json',
      message:
        'refers to profile "talos-control-plane", which was not imported (no valid profiles/talos-control-plane.json)',
    },
  ]);
});

test('Matchbox ids that are not Kubernetes names are renamed, and collisions are errors', () => {
  assert.equal(kubeName('Worker_01'), 'worker-01');
  assert.equal(kubeName('--a..b--'), 'a.b');
  const dir = dataDir({
    'profiles/p.json': profileJson('p'),
    'groups/Worker_01.json': JSON.stringify({ profile: 'p' }),
    'groups/worker-01.json': JSON.stringify({ profile: 'p' }),
  });
  const result = importDataDir(dir, { namespace: 'metal' });
  assert.deepEqual(result.warnings, [
    {
      file: 'groups/Worker_01.json',
      message: 'imported as "worker-01" ("Worker_01" is not a Kubernetes name)',
    },
  ]);
  assert.deepEqual(result.errors, [
    {
      file: 'groups/worker-01.json',
      message: 'becomes the name "worker-01", which another file already took',
    },
  ]);
});

test('render reports invalid manifests with their source and field, and duplicates', () => {
  const rendered = renderManifests(
    [
      {
        source: 'a.yaml#1',
        object: {
          apiVersion: 'metalbox.io/v1alpha1',
          kind: 'MatchboxGroup',
          metadata: { name: 'g' },
          spec: {},
        },
      },
      {
        source: 'a.yaml#2',
        object: {
          apiVersion: 'metalbox.io/v1alpha1',
          kind: 'MatchboxProfile',
          metadata: { name: 'p' },
          spec: { kernel: '/k', args: ['a b'] },
        },
      },
      {
        source: 'b.yaml#1',
        object: {
          apiVersion: 'metalbox.io/v1alpha1',
          kind: 'MatchboxProfile',
          metadata: { name: 'q' },
          spec: {},
        },
      },
      {
        source: 'b.yaml#2',
        object: {
          apiVersion: 'metalbox.io/v1alpha1',
          kind: 'MatchboxProfile',
          metadata: { name: 'q' },
          spec: {},
        },
      },
      { source: 'c.yaml#1', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } } },
    ],
    { defaultNamespace: 'metal' },
  );
  assert.deepEqual(rendered.errors, [
    { source: 'a.yaml#1', message: 'MatchboxGroup metal/g: spec.profileRef: Required value' },
    {
      source: 'a.yaml#2',
      message:
        'MatchboxProfile metal/p: spec.args[0]: Invalid value: "a b": must be one kernel argument without whitespace',
    },
    { source: 'b.yaml#2', message: 'MatchboxProfile metal/q is also defined in b.yaml#1' },
  ]);
  assert.deepEqual(rendered.ignored, { ConfigMap: 1 });
  assert.deepEqual(rendered.profiles, [{ id: 'metal.q' }]);
});
