// Benchmark: standalone mode with a 5,000-host fleet in etcd (Debian's etcd-server on loopback).
// Seeds N BareMetalHosts with a provisioned-looking status and N BMC Secrets (sealed with
// AES-256-GCM), then measures:
//   - `metalbox get bmh -A` latency (in-process: list + decode + table; and one real process,
//     Node start-up included),
//   - controller cold start to a full sync (fresh connection; informers for BareMetalHost and
//     Secret listed and watching),
//   - etcd's DB size as written and after compaction + defragmentation.
// Run: bash scripts/node scripts/bench/etcd.ts [--hosts 5000] [--runs 10]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { main as get } from '../../src/cli/get.ts';
import { BareMetalHostKind } from '../../src/crds/index.ts';
import { Informer } from '../../src/runtime/informer.ts';
import type { Resource, ResourceKind } from '../../src/runtime/resource.ts';
import { crdValidator } from '../../src/stores/crd-validator.ts';
import { EtcdStore } from '../../src/stores/etcd.ts';
import { Keyring, SecretKind, SecretStore } from '../../src/stores/secrets.ts';
import { startEtcd } from '../../test/env/etcd.ts';
import { peerBinary } from '../../test/env/peers.ts';

const { values } = parseArgs({
  options: { hosts: { type: 'string', default: '5000' }, runs: { type: 'string', default: '10' } },
});
const HOSTS = Math.max(1, Number(values.hosts));
const RUNS = Math.max(1, Number(values.runs));
const NS = 'metalbox-system';
const PREFIX = '/metalbox';
const BMH: ResourceKind = { ...BareMetalHostKind, namespaced: true };
const BIN = fileURLToPath(new URL('../../bin/metalbox', import.meta.url));

const mac = (i: number) =>
  `02:00:${[(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, 1].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
const ip = (base: number, i: number) => `10.${base + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

function host(i: number): Resource {
  const name = `host-${String(i).padStart(5, '0')}`;
  return {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'BareMetalHost',
    metadata: { namespace: NS, name, labels: { 'metalbox.io/rack': `r${i % 40}` } },
    spec: {
      online: true,
      bootMACAddress: mac(i),
      bmc: { address: `redfish://${ip(100, i)}/redfish/v1/Systems/1`, credentialsName: `${name}-bmc` },
      bootMode: 'UEFI',
      role: i % 10 < 3 ? 'controlplane' : 'worker',
      profileRef: { name: 'talos-worker' },
      talosConfigRef: { name: 'mycluster' },
      network: {
        hostname: name,
        bond: {
          name: 'bond0',
          mode: '802.3ad',
          lacpRate: 'fast',
          mtu: 1500,
          members: [{ busPath: '0*:*:00.0' }, { busPath: '0*:*:00.1' }],
        },
        vlan: { id: 20 },
        addresses: [`${ip(20, i)}/16`],
        routes: [{ network: '0.0.0.0/0', gateway: '10.20.0.1' }],
        nameservers: ['10.20.0.1'],
      },
    },
  };
}

function status(): Record<string, unknown> {
  const t = now();
  return {
    observedGeneration: 1,
    provisioning: {
      state: 'provisioned',
      bootTarget: 'disk',
      profile: 'talos-worker',
      attempt: 1,
      startedAt: t,
    },
    operationalStatus: 'OK',
    poweredOn: true,
    goodCredentials: { name: 'bmc', resourceVersion: '1' },
    hardware: {
      manufacturer: 'Dell Inc.',
      model: 'PowerEdge R650',
      serial: randomBytes(4).toString('hex'),
      uuid: crypto.randomUUID(),
    },
    conditions: ['Registered', 'Inspected', 'Provisioned'].map((type) => ({
      type,
      status: 'True',
      reason: 'Succeeded',
      message: `${type.toLowerCase()} without error`,
      lastTransitionTime: t,
      observedGeneration: 1,
    })),
    operationHistory: {
      register: { start: t, end: t },
      inspect: { start: t, end: t },
      provision: { start: t, end: t },
    },
  };
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function stats(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const pct = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  return `p50 ${pct(50).toFixed(0)} ms, p95 ${pct(95).toFixed(0)} ms, max ${s.at(-1)!.toFixed(0)} ms (${s.length} runs)`;
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

const etcd = await startEtcd({ name: 'etcd-bench' });
try {
  const keyring = new Keyring([{ name: 'k1', key: randomBytes(32) }]);
  const open = () =>
    new SecretStore(new EtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX, validator: crdValidator }), {
      keyring,
      requireEncryption: true,
    });

  // Seed.
  const seeder = open();
  const indexes = Array.from({ length: HOSTS }, (_, i) => i);
  let t = process.hrtime.bigint();
  await pool(indexes, 32, async (i) => {
    const created = await seeder.create(BMH, host(i));
    await seeder.updateStatus(BMH, { ...created, status: status() });
    await seeder.create(SecretKind, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { namespace: NS, name: `host-${String(i).padStart(5, '0')}-bmc` },
      type: 'Opaque',
      stringData: { username: 'root', password: randomBytes(12).toString('base64') },
    } as Resource);
  });
  const seedMs = ms(t);
  await seeder.close();

  // `get bmh -A`, in-process.
  const flags = ['--store', `etcd://${etcd.endpoint}${PREFIX}`];
  const getSamples: number[] = [];
  let rows = 0;
  for (let r = 0; r < RUNS; r++) {
    let out = '';
    t = process.hrtime.bigint();
    const code = await get(['bmh', '-A', ...flags], {
      out: (s) => {
        out += s;
      },
      err: () => {},
      env: {},
      now: () => new Date(),
    });
    getSamples.push(ms(t));
    if (code !== 0) throw new Error(`get bmh exited ${code}`);
    rows = out.split('\n').length - 2;
  }
  // ... and as a real process (Node start-up and module loading included).
  t = process.hrtime.bigint();
  await promisify(execFile)('bash', [BIN, 'get', 'bmh', '-A', ...flags], { maxBuffer: 64 * 1024 * 1024 });
  const processMs = ms(t);

  // Controller cold start: new connection, informers for hosts and Secrets listed and watching.
  const syncSamples: number[] = [];
  for (let r = 0; r < Math.min(RUNS, 5); r++) {
    const store = open();
    t = process.hrtime.bigint();
    const informers = [
      new Informer(store, BMH, { resyncMs: 0 }),
      new Informer(store, SecretKind, { resyncMs: 0 }),
    ];
    for (const i of informers) i.start();
    await Promise.all(informers.map((i) => i.waitForSync()));
    syncSamples.push(ms(t));
    const cached = informers.map((i) => i.list().length);
    if (cached[0] !== HOSTS || cached[1] !== HOSTS) throw new Error(`informers hold ${cached.join('/')}`);
    await Promise.all(informers.map((i) => i.stop()));
    await store.close();
  }

  // DB size as written, then after compaction + defragmentation.
  const admin = new EtcdStore({ hosts: [etcd.endpoint], prefix: PREFIX });
  const before = Number((await admin.client.maintenance.status({})).dbSize);
  await admin.compact();
  await admin.client.maintenance.defragment({});
  const after = Number((await admin.client.maintenance.status({})).dbSize);
  const revision = await admin.revision();
  await admin.close();

  const lines = [
    `${(await promisify(execFile)(peerBinary('etcd'), ['--version'])).stdout.split('\n')[0]} on loopback, --unsafe-no-fsync (test helper: writes faster than on disk; reads unaffected)`,
    `fleet: ${HOSTS} BareMetalHosts (spec + provisioned status) and ${HOSTS} sealed BMC Secrets, ${revision} revisions`,
    `seeding (create + status + Secret, 32 in flight): ${(seedMs / 1000).toFixed(1)} s (${((HOSTS * 3) / (seedMs / 1000)).toFixed(0)} writes/s)`,
    `metalbox get bmh -A (in-process, ${rows} rows): ${stats(getSamples)}`,
    `metalbox get bmh -A (new process, Node start-up included): ${processMs.toFixed(0)} ms`,
    `controller cold start to full sync (BareMetalHost + Secret informers, ${HOSTS * 2} objects): ${stats(syncSamples)}`,
    `etcd DB size: ${mib(before)} as written, ${mib(after)} after compaction + defrag`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await etcd.stop();
}
