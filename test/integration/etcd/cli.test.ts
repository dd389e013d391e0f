// The operator CLI without kubectl: the seed manifests applied, listed, described and deleted with
// `metalbox apply/get/describe/delete/watch`, on etcd and on the embedded SQLite store, with the
// apiserver's validation errors for the bad-manifest table. Commands run in-process (their main(args, io)),
// and once as a real `bin/metalbox` process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { main as apply, LAST_APPLIED_ANNOTATION } from '../../../src/cli/apply.ts';
import { main as del } from '../../../src/cli/delete.ts';
import { main as describeCmd } from '../../../src/cli/describe.ts';
import { main as get } from '../../../src/cli/get.ts';
import type { CliIo } from '../../../src/cli/store-command.ts';
import { main as watch } from '../../../src/cli/watch.ts';
import { BareMetalHostKind, MatchboxProfileKind } from '../../../src/crds/index.ts';
import { validateObject } from '../../../src/crds/validate.ts';
import { EventKind } from '../../../src/runtime/events.ts';
import type { Resource, ResourceKind } from '../../../src/runtime/resource.ts';
import type { ResourceStore } from '../../../src/runtime/store.ts';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { SqliteStore } from '../../../src/stores/sqlite.ts';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';
import { badManifests, NAMESPACE } from '../../fixtures/bad-manifests.ts';
import { capturingIo } from '../../fixtures/capturing-io.ts';

const MANIFESTS = fileURLToPath(new URL('../../../manifests/', import.meta.url));
const BIN = fileURLToPath(new URL('../../../bin/metalbox', import.meta.url));
const BMH: ResourceKind = { ...BareMetalHostKind, namespaced: true };
const PROFILE: ResourceKind = { ...MatchboxProfileKind, namespaced: true };
const HOSTS = ['cp-01', 'cp-02', 'cp-03', 'worker-01', 'worker-02'];

let etcd: EtcdPeer;
const scratch = mkdtempSync(join(tmpdir(), 'metalbox-cli-'));
const keyFile = join(scratch, 'keys.yaml');
before(async () => {
  etcd = await startEtcd({ name: 'etcd-cli' });
  writeFileSync(keyFile, `keys:\n  - name: k1\n    secret: ${randomBytes(32).toString('base64')}\n`);
  chmodSync(keyFile, 0o600);
});
after(async () => {
  await etcd?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

interface Result {
  code: number;
  out: string;
  err: string;
}

type Command = (args: string[], io: CliIo) => Promise<number>;

async function cli(command: Command, args: string[], flags: string[], signal?: AbortSignal): Promise<Result> {
  const captured = capturingIo(signal);
  const code = await command([...args, ...flags], captured.io);
  return { code, out: captured.out(), err: captured.err() };
}

interface Backend {
  name: string;
  flags: () => string[];
  /** Direct access to the same store, beside the commands (both stores take several clients at once). */
  withStore: <T>(fn: (store: ResourceStore) => Promise<T>) => Promise<T>;
}

const etcdPrefix = `/cli-${randomBytes(3).toString('hex')}`;
const fileDir = join(scratch, 'file-store');
const backends: Backend[] = [
  {
    name: 'etcd',
    flags: () => ['--store', `etcd://${etcd.endpoint}${etcdPrefix}`, '--encryption-key-file', keyFile],
    withStore: async (fn) => {
      const store = new EtcdStore({ hosts: [etcd.endpoint], prefix: etcdPrefix });
      try {
        return await fn(store);
      } finally {
        await store.close();
      }
    },
  },
  {
    name: 'embedded store',
    flags: () => ['--store', `file:${fileDir}`, '--encryption-key-file', keyFile],
    withStore: async (fn) => {
      const store = await SqliteStore.open(fileDir);
      try {
        return await fn(store);
      } finally {
        await store.close();
      }
    },
  },
];

for (const backend of backends) {
  describe(`metalbox CLI on the ${backend.name}`, () => {
    const ns = ['-n', NAMESPACE];

    test('apply -f manifests/ creates every seed object, and again reports them unchanged', async () => {
      const first = await cli(apply, ['-f', MANIFESTS], backend.flags());
      assert.equal(first.code, 0, first.err);
      assert.match(first.out, /^namespace\/metalbox-system created$/m);
      for (const h of HOSTS)
        assert.match(first.out, new RegExp(`^baremetalhost\\.metalbox\\.io/${h} created$`, 'm'));
      assert.match(first.out, /^secret\/cp-01-bmc created$/m);
      assert.match(first.out, /^matchboxprofile\.metalbox\.io\/\S+ created$/m);
      assert.match(first.out, /^talosmachineconfig\.metalbox\.io\/mycluster created$/m);
      const again = await cli(apply, ['-f', MANIFESTS], backend.flags());
      assert.equal(again.code, 0, again.err);
      assert.doesNotMatch(again.out, / (created|configured)$/m);
      assert.equal(
        again.out.split('\n').filter(Boolean).length,
        first.out.split('\n').filter(Boolean).length,
      );
    });

    test('apply updates as kubectl apply: fields the last apply set and this one drops go, fields others set stay', async () => {
      const profile = (labels: Record<string, string>, extra: Record<string, unknown>) => `
apiVersion: metalbox.io/v1alpha1
kind: MatchboxProfile
metadata:
  name: three-way
  namespace: ${NAMESPACE}
  labels: ${JSON.stringify(labels)}
spec: ${JSON.stringify({ kernel: '/assets/vmlinuz', initrd: ['/assets/initramfs.xz'], ...extra })}
`;
      const file = join(scratch, `three-way-${backend.name.replace(/\W/g, '')}.yaml`);
      writeFileSync(file, profile({ tier: 'boot', owner: 'ops' }, { displayName: 'first' }));
      assert.equal((await cli(apply, ['-f', file], backend.flags())).code, 0);
      // Someone else (kubectl edit, another tool) adds a label and an annotation.
      const ref = { namespace: NAMESPACE, name: 'three-way' };
      await backend.withStore(async (store) => {
        const obj = await store.get(PROFILE, ref);
        obj.metadata.labels = { ...obj.metadata.labels, team: 'infra' };
        obj.metadata.annotations = { ...obj.metadata.annotations, 'example.com/note': 'kept' };
        await store.update(PROFILE, obj);
      });
      // The manifest drops the owner label and the displayName, and changes the initrd list.
      writeFileSync(file, profile({ tier: 'boot' }, { initrd: ['/assets/other.xz'] }));
      const again = await cli(apply, ['-f', file], backend.flags());
      assert.equal(again.code, 0, again.err);
      assert.match(again.out, /^matchboxprofile\.metalbox\.io\/three-way configured$/m);
      const obj = await backend.withStore((store) =>
        store.get<Resource & { spec: Record<string, unknown> }>(PROFILE, ref),
      );
      assert.deepEqual(obj.metadata.labels, { tier: 'boot', team: 'infra' });
      assert.equal(obj.metadata.annotations?.['example.com/note'], 'kept');
      assert.equal(obj.spec.displayName, undefined);
      assert.deepEqual(obj.spec.initrd, ['/assets/other.xz']);
      const remembered = JSON.parse(obj.metadata.annotations?.[LAST_APPLIED_ANNOTATION] ?? '{}');
      assert.deepEqual(remembered.metadata.labels, { tier: 'boot' });
      // Unchanged manifest, unchanged object.
      const third = await cli(apply, ['-f', file], backend.flags());
      assert.match(third.out, /^matchboxprofile\.metalbox\.io\/three-way unchanged$/m);
      assert.equal((await cli(del, ['matchboxprofile', 'three-way', ...ns], backend.flags())).code, 0);
    });

    test('apply never remembers a Secret in an annotation (its values would be in plain text)', async () => {
      const secrets = await backend.withStore((store) =>
        store.list({ group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true }),
      );
      assert.ok(secrets.items.length > 0);
      for (const s of secrets.items)
        assert.equal(s.metadata.annotations?.[LAST_APPLIED_ANNOTATION], undefined, s.metadata.name);
      const hosts = await backend.withStore((store) => store.list(BMH, { namespace: NAMESPACE }));
      assert.ok(hosts.items.every((h) => h.metadata.annotations?.[LAST_APPLIED_ANNOTATION] !== undefined));
    });

    test('get bmh prints the CRD printer columns, by plural, singular and short name alike', async () => {
      const byShort = await cli(get, ['bmh', ...ns], backend.flags());
      assert.equal(byShort.code, 0, byShort.err);
      const [header, ...rows] = byShort.out.trimEnd().split('\n');
      assert.deepEqual(header!.split(/\s{2,}/), [
        'NAME',
        'STATE',
        'ONLINE',
        'POWERED',
        'BMC',
        'MAC',
        'ERROR',
        'READY',
        'REASON',
        'PAUSED',
        'AGE',
      ]);
      assert.deepEqual(
        rows.map((r) => r.split(/\s+/)[0]),
        HOSTS,
      );
      assert.match(
        rows[0]!,
        /^cp-01\s+true\s+redfish:\/\/10\.0\.10\.101\/redfish\/v1\/Systems\/1\s+aa:bb:cc:dd:ee:01\s+\d+s$/,
      );
      // AGE may tick over between two runs; everything else must be the same.
      const withoutAge = (out: string) => out.replace(/ +\d+[smhd]$/gm, '');
      for (const name of ['baremetalhosts', 'baremetalhost', 'BareMetalHost', 'baremetalhosts.metalbox.io']) {
        const other = await cli(get, [name, ...ns], backend.flags());
        assert.equal(withoutAge(other.out), withoutAge(byShort.out), name);
      }
      const all = await cli(get, ['bmh', '-A'], backend.flags());
      assert.match(all.out, /^NAMESPACE\s+NAME\s+STATE/);
      const wide = await cli(get, ['tmc', ...ns, '-o', 'wide'], backend.flags());
      assert.match(wide.out, /^NAME\s+TALOS\s+ENDPOINT\s+INSTALLER\s+RENDERED\s+READY\s+REASON\s+AGE$/m);
      const narrow = await cli(get, ['tmc', ...ns], backend.flags());
      assert.doesNotMatch(narrow.out, /INSTALLER/);
    });

    test('get -o yaml/json/name returns the stored objects, defaulted as the apiserver would', async () => {
      const yaml = await cli(get, ['bmh', 'cp-01', ...ns, '-o', 'yaml'], backend.flags());
      assert.equal(yaml.code, 0, yaml.err);
      const obj = parse(yaml.out) as Resource;
      const expected = validateObject(obj);
      assert.ok(expected.ok);
      assert.deepEqual(obj.spec, (expected.object as Resource).spec);
      assert.ok(obj.metadata.uid && obj.metadata.resourceVersion);
      const json = await cli(get, ['bmh', ...ns, '-o', 'json'], backend.flags());
      const list = JSON.parse(json.out) as { kind: string; items: Resource[] };
      assert.equal(list.kind, 'List');
      assert.equal(list.items.length, 5);
      const names = await cli(get, ['bmh', ...ns, '-o', 'name'], backend.flags());
      assert.equal(names.out, HOSTS.map((h) => `baremetalhost.metalbox.io/${h}\n`).join(''));
    });

    test('describe shows status, conditions and recent events; Secrets only by size', async () => {
      await backend.withStore(async (store) => {
        const host = await store.get(BMH, { namespace: NAMESPACE, name: 'cp-02' });
        await store.patchStatus(
          BMH,
          { namespace: NAMESPACE, name: 'cp-02' },
          {
            provisioning: { state: 'inspecting' },
            conditions: [
              {
                type: 'Inspected',
                status: 'False',
                reason: 'InspectionRunning',
                message: 'reading the inventory over Redfish',
                lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
                observedGeneration: 1,
              },
            ],
          },
        );
        const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        await store.create(EventKind, {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { namespace: NAMESPACE, name: `cp-02.${randomBytes(4).toString('hex')}` },
          involvedObject: {
            apiVersion: host.apiVersion,
            kind: host.kind,
            name: 'cp-02',
            namespace: NAMESPACE,
            uid: host.metadata.uid,
          },
          reason: 'PowerOn',
          message: 'powered on through Redfish',
          type: 'Normal',
          count: 3,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: 'metalbox-controller' },
          reportingComponent: 'metalbox-controller',
          reportingInstance: 'mgmt-01',
        } as Resource);
      });
      const out = await cli(describeCmd, ['bmh', 'cp-02', ...ns], backend.flags());
      assert.equal(out.code, 0, out.err);
      assert.match(out.out, /^Name:\s+cp-02$/m);
      assert.match(out.out, /^Kind:\s+BareMetalHost$/m);
      assert.match(out.out, /^Spec:\n {2}online: true$/m);
      assert.match(out.out, /^Status:\n {2}provisioning:\n {4}state: inspecting$/m);
      assert.match(
        out.out,
        /^Conditions:\n {2}Type\s+Status\s+Reason\s+Age\s+Message\n.*\n {2}Inspected\s+False\s+InspectionRunning\s+\d+s\s+reading the inventory over Redfish$/m,
      );
      assert.match(
        out.out,
        /^Events:\n {2}Type\s+Reason\s+Age\s+From\s+Message\n.*\n {2}Normal\s+PowerOn\s+\d+s \(x3 over \d+s\)\s+metalbox-controller\s+powered on through Redfish$/m,
      );
      const quiet = await cli(describeCmd, ['bmh', 'cp-03', ...ns], backend.flags());
      assert.match(quiet.out, /^Events:\s+<none>$/m);
      const secret = await cli(describeCmd, ['secret', 'cp-01-bmc', ...ns], backend.flags());
      assert.match(secret.out, /^password:\s+9 bytes$/m);
      assert.doesNotMatch(secret.out, /CHANGE-ME/);
      const raw = await cli(get, ['secret', 'cp-01-bmc', ...ns, '-o', 'json'], backend.flags());
      const data = (JSON.parse(raw.out) as { data: Record<string, string> }).data;
      assert.equal(Buffer.from(data.password!, 'base64').toString(), 'CHANGE-ME');
    });

    test('apply rejects every bad manifest with the apiserver field path, and stores none of them', async () => {
      const dir = mkdtempSync(join(scratch, 'bad-'));
      for (const [i, bad] of badManifests.entries()) {
        const file = join(dir, `bad-${i}.json`);
        writeFileSync(file, JSON.stringify(bad.manifest));
        const res = await cli(apply, ['-f', file], backend.flags());
        assert.equal(res.code, 1, `${bad.name}: ${res.out}`);
        assert.match(
          res.err,
          /^Error from store \(Invalid\): error when applying ".*bad-\d+\.json#1": \w+\.metalbox\.io ".*" is invalid: /,
        );
        assert.ok(res.err.includes(`${bad.path}: `), `${bad.name}: expected ${bad.path} in ${res.err}`);
        if (bad.message !== undefined) assert.ok(res.err.includes(bad.message), `${bad.name}: ${res.err}`);
      }
      const listed = await cli(get, ['bmh', ...ns, '-o', 'name'], backend.flags());
      assert.doesNotMatch(listed.out, /bad-host/);
    });

    test('get and delete of a missing object say NotFound the way kubectl does', async () => {
      const res = await cli(get, ['bmh', 'cp-09', ...ns], backend.flags());
      assert.equal(res.code, 1);
      assert.equal(res.err, 'Error from store (NotFound): baremetalhosts.metalbox.io "cp-09" not found\n');
      const gone = await cli(del, ['bmh', 'cp-09', ...ns], backend.flags());
      assert.equal(gone.code, 1);
      assert.match(gone.err, /NotFound/);
      const ignored = await cli(del, ['bmh', 'cp-09', ...ns, '--ignore-not-found'], backend.flags());
      assert.equal(ignored.code, 0);
      const unknown = await cli(get, ['frobnicators'], backend.flags());
      assert.equal(unknown.code, 2);
      assert.match(unknown.err, /doesn't have a resource type "frobnicators"/);
    });

    test('delete removes an object; one with a finalizer is marked and goes when the finalizer does', async () => {
      const removed = await cli(del, ['bmh', 'worker-02', ...ns], backend.flags());
      assert.equal(removed.code, 0, removed.err);
      assert.equal(removed.out, 'baremetalhost.metalbox.io "worker-02" deleted\n');
      assert.equal((await cli(get, ['bmh', 'worker-02', ...ns], backend.flags())).code, 1);
      await backend.withStore(async (store) => {
        const h = await store.get(BMH, { namespace: NAMESPACE, name: 'worker-01' });
        await store.update(BMH, {
          ...h,
          metadata: { ...h.metadata, finalizers: ['metalbox.io/deprovision'] },
        });
      });
      const marked = await cli(del, ['bmh', 'worker-01', ...ns], backend.flags());
      assert.equal(
        marked.out,
        'baremetalhost.metalbox.io "worker-01" marked for deletion (waiting for finalizers: metalbox.io/deprovision)\n',
      );
      const described = await cli(describeCmd, ['bmh', 'worker-01', ...ns], backend.flags());
      assert.match(described.out, /Deletion Timestamp:/);
      const release = () =>
        backend.withStore(async (store) => {
          const h = await store.get(BMH, { namespace: NAMESPACE, name: 'worker-01' });
          await store.update(BMH, { ...h, metadata: { ...h.metadata, finalizers: [] } });
        });
      const waiting = cli(del, ['bmh', 'worker-01', ...ns, '--wait', '--timeout', '20s'], backend.flags());
      await new Promise((r) => setTimeout(r, 700));
      await release();
      const done = await waiting;
      assert.equal(done.code, 0, done.err);
      assert.equal(done.out, 'baremetalhost.metalbox.io "worker-01" deleted\n');
      assert.equal((await cli(get, ['bmh', 'worker-01', ...ns], backend.flags())).code, 1);
      const byFile = await cli(del, ['-f', join(MANIFESTS, 'matchboxprofiles.yaml')], backend.flags());
      assert.equal(byFile.code, 0, byFile.err);
      assert.match(byFile.out, /^matchboxprofile\.metalbox\.io "\S+" deleted$/m);
      assert.equal(
        (await cli(get, ['mbp', ...ns], backend.flags())).err,
        `No resources found in ${NAMESPACE} namespace.\n`,
      );
    });

    test('watch prints the objects, then changes as they happen', async () => {
      const ac = new AbortController();
      const running = cli(watch, ['bmh', ...ns, '-o', 'json'], backend.flags(), ac.signal);
      await new Promise((r) => setTimeout(r, 1500));
      await backend.withStore(async (store) => {
        const h = await store.get(BMH, { namespace: NAMESPACE, name: 'cp-03' });
        await store.update(BMH, { ...h, spec: { ...(h.spec as object), online: false } });
      });
      await new Promise((r) => setTimeout(r, 1000));
      ac.abort();
      const res = await running;
      assert.equal(res.code, 0, res.err);
      const events = res.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; object: Resource });
      assert.deepEqual(
        events
          .filter((e) => e.type === 'ADDED')
          .map((e) => e.object.metadata.name)
          .sort(),
        ['cp-01', 'cp-02', 'cp-03'],
      );
      const modified = events.find((e) => e.type === 'MODIFIED');
      assert.ok(modified, 'a MODIFIED event');
      assert.equal(modified.object.metadata.name, 'cp-03');
      assert.equal((modified.object.spec as { online: boolean }).online, false);
    });
  });
}

test('bin/metalbox get bmh runs as a process against etcd', async () => {
  const { stdout } = await promisify(execFile)(
    'bash',
    [BIN, 'get', 'bmh', '-n', NAMESPACE, '--store', `etcd://${etcd.endpoint}${etcdPrefix}`],
    { env: { ...process.env, METALBOX_STORE: '' } },
  );
  assert.match(stdout, /^NAME\s+STATE\s+ONLINE/);
  assert.match(stdout, /^cp-01\s+/m);
});

test('key rotation as documented: get secrets -A -o yaml, then apply with the new key first, re-seals every Secret', async () => {
  const rotated = join(scratch, 'keys-rotated.yaml');
  const oldKey = readFileSync(keyFile, 'utf8').match(/secret: (\S+)/)![1];
  writeFileSync(
    rotated,
    `keys:\n  - name: k2\n    secret: ${randomBytes(32).toString('base64')}\n  - name: k1\n    secret: ${oldKey}\n`,
  );
  chmodSync(rotated, 0o600);
  const store = ['--store', `etcd://${etcd.endpoint}${etcdPrefix}`];
  const dump = await cli(get, ['secrets', '-A', '-o', 'yaml'], [...store, '--encryption-key-file', rotated]);
  assert.equal(dump.code, 0, dump.err);
  const file = join(scratch, 'secrets-dump.yaml');
  writeFileSync(file, dump.out);
  const applied = await cli(apply, ['-f', file], [...store, '--encryption-key-file', rotated]);
  assert.equal(applied.code, 0, applied.err);
  assert.match(applied.out, /^secret\/cp-01-bmc configured$/m);
  const raw = await backends[0]!.withStore(
    async (s) =>
      (
        await s.list<Resource & { encryptedData?: string }>({
          group: '',
          version: 'v1',
          kind: 'Secret',
          plural: 'secrets',
          namespaced: true,
        })
      ).items,
  );
  assert.ok(raw.length >= 5);
  assert.ok(
    raw.every((s) => s.encryptedData?.includes(':v1:k2:')),
    'every Secret sealed with k2',
  );
  const again = await cli(apply, ['-f', file], [...store, '--encryption-key-file', rotated]);
  assert.doesNotMatch(again.out, /configured/);
});
