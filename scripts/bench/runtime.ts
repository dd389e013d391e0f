// Benchmark: reconcile throughput of a no-op controller over N BareMetalHosts (default 5,000) on the
// embedded SQLite store (`--store file:<dir>`) and on a real kube-apiserver (started here with test/env/kube.ts), through
// the whole runtime: informer (list + watch) → work queue → reconcile.
//   cold start  manager start → every object listed and reconciled once
//   watch       every object updated by a writer → every update seen by the reconciler (bounded by
//               how fast the store takes writes, reported as the seed/update write rate)
// Run: bash scripts/node scripts/bench/runtime.ts [--objects N] [--workers N] [--store sqlite|kube|both]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { allCrds } from '../../src/crds/crd.ts';
import { Manager } from '../../src/runtime/manager.ts';
import type { Resource, ResourceKind } from '../../src/runtime/resource.ts';
import type { ResourceStore } from '../../src/runtime/store.ts';
import { KubeStore } from '../../src/stores/kube.ts';
import { SqliteStore } from '../../src/stores/sqlite.ts';
import { type CrdLike, startKubeApiserver } from '../../test/env/kube.ts';

const { values } = parseArgs({
  options: {
    objects: { type: 'string', default: '5000' },
    workers: { type: 'string', default: '4' },
    store: { type: 'string', default: 'both' },
  },
});
const N = Math.max(1, Number(values.objects));
const WORKERS = Math.max(1, Number(values.workers));
const WRITE_CONCURRENCY = 32;
const NAMESPACE = 'metalbox-system';

const BareMetalHost: ResourceKind = {
  group: 'metalbox.io',
  version: 'v1alpha1',
  kind: 'BareMetalHost',
  plural: 'baremetalhosts',
  namespaced: true,
};

/** The first seed host, as a realistic object to copy N times with unique names and MACs. */
const template = parseAllDocuments(
  readFileSync(new URL('../../manifests/baremetalhosts.yaml', import.meta.url), 'utf8'),
)[0]!.toJS() as Resource<Record<string, unknown>>;

function host(i: number): Resource {
  const mac = [0x02, 0, 0, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join(':');
  return {
    ...template,
    metadata: { name: `bench-${String(i).padStart(5, '0')}`, namespace: NAMESPACE },
    spec: {
      ...template.spec,
      bootMACAddress: mac,
      bmc: { ...(template.spec!.bmc as object), credentialsName: `bench-${i}-bmc` },
    },
  };
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface Row {
  store: string;
  phase: string;
  objects: number;
  ms: number;
  note?: string;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);

async function bench(name: string, store: ResourceStore): Promise<Row[]> {
  const rows: Row[] = [];
  const indexes = Array.from({ length: N }, (_, i) => i);

  let t0 = performance.now();
  await pool(indexes, WRITE_CONCURRENCY, async (i) => {
    await store.create(BareMetalHost, host(i));
  });
  rows.push({ store: name, phase: 'seed (writes)', objects: N, ms: performance.now() - t0 });

  // The no-op controller: notes which round of each object it has seen, from the informer cache.
  const round = new Map<string, string>();
  let want = '0';
  let remaining = N;
  let allSeen: () => void = () => {};
  const manager = new Manager({
    store,
    registry: new Registry(),
    namespace: NAMESPACE,
    informer: { resyncMs: 0 },
  });
  manager.add({
    name: 'noop',
    for: BareMetalHost,
    workers: WORKERS,
    async reconcile(req) {
      const seen = manager.informer(BareMetalHost).get(req)?.metadata.labels?.round ?? '0';
      if (seen === want && round.get(req.key) !== want) {
        round.set(req.key, want);
        if (--remaining === 0) allSeen();
      }
    },
  });
  const everyObject = () =>
    new Promise<void>((resolve) => {
      allSeen = resolve;
    });

  t0 = performance.now();
  const cold = everyObject();
  await manager.start();
  await manager.informer(BareMetalHost).waitForSync();
  const listedMs = performance.now() - t0;
  await cold;
  rows.push({ store: name, phase: 'cold start', objects: N, ms: performance.now() - t0 });
  rows.push({ store: name, phase: '  of which list', objects: N, ms: listedMs });

  want = '1';
  remaining = N;
  const updates = everyObject();
  t0 = performance.now();
  let writesMs = 0;
  await pool(indexes, WRITE_CONCURRENCY, async (i) => {
    const ref = { namespace: NAMESPACE, name: host(i).metadata.name };
    const current = await store.get(BareMetalHost, ref);
    await store.update(BareMetalHost, {
      ...current,
      metadata: { ...current.metadata, labels: { round: '1' } },
    });
  }).then(() => {
    writesMs = performance.now() - t0;
  });
  await updates;
  const watchMs = performance.now() - t0;
  rows.push({
    store: name,
    phase: 'watch (updates)',
    objects: N,
    ms: watchMs,
    note: `last update reconciled ${Math.max(0, watchMs - writesMs).toFixed(0)} ms after the last write`,
  });
  rows.push({ store: name, phase: '  of which writes', objects: N, ms: writesMs });
  await manager.stop();
  return rows;
}

async function main(): Promise<void> {
  const which = values.store;
  const rows: Row[] = [];
  process.stderr.write(`runtime: no-op reconcile over ${N} BareMetalHosts, ${WORKERS} workers\n`);
  if (which === 'sqlite' || which === 'both') {
    const dir = mkdtempSync(join(tmpdir(), 'metalbox-bench-sqlite-'));
    const store = await SqliteStore.open(dir);
    try {
      rows.push(...(await bench('sqlite', store)));
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (which === 'kube' || which === 'both') {
    process.stderr.write('runtime: starting kube-apiserver and etcd\n');
    const kube = await startKubeApiserver();
    const store = new KubeStore({ kubeConfig: kube.kubeConfig(), fieldManager: 'metalbox-bench' });
    try {
      await kube.installCRDs(allCrds() as unknown as CrdLike[]);
      await kube.request('POST', '/api/v1/namespaces', { metadata: { name: NAMESPACE } });
      rows.push(...(await bench('kube', store)));
    } finally {
      await store.close();
      await kube.stop();
    }
  }
  const header = ['store', 'phase', 'objects', 'wall', 'objects/s', 'note'];
  const table = rows.map((r) => [
    r.store,
    r.phase,
    String(r.objects),
    seconds(r.ms),
    String(rate(r.objects, r.ms)),
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  for (const line of [header, ...table]) {
    process.stdout.write(
      `${line
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `runtime bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
