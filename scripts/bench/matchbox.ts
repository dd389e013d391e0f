// Benchmark of the Matchbox sync on two real Matchbox servers with the embedded SQLite store:
//   1. 2 profiles + N groups (default 5,000) applied: time from the first write until every
//      object is Synced=True, gRPC calls made, peak RSS of this process;
//   2. steady-state drift scans of every object on each endpoint (wall time and CPU);
//   3. refill: one endpoint restarted with an empty data dir, refilled by one drift scan.
// Run: bash scripts/node scripts/bench/matchbox.ts [--groups 5000] [--verify] [--workers 8]
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { parseMatchboxSyncConfig } from '../../src/controllers/matchbox/config.ts';
import { type ScanSummary, scanEndpoint } from '../../src/controllers/matchbox/drift.ts';
import { buildMatchboxSync } from '../../src/controllers/matchbox/family.ts';
import { GroupKind, type GroupObject, ProfileKind } from '../../src/controllers/matchbox/kinds.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { Manager } from '../../src/runtime/manager.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { SqliteStore } from '../../src/stores/sqlite.ts';
import { startMatchboxPair } from '../../test/env/matchbox.ts';
import { scratchDir } from '../../test/env/peers.ts';

const NAMESPACE = 'metalbox-system';
const { values: args } = parseArgs({
  options: {
    groups: { type: 'string', default: '5000' },
    verify: { type: 'boolean', default: false },
    workers: { type: 'string', default: '8' },
    scans: { type: 'string', default: '3' },
  },
});
const GROUPS = Number(args.groups);

const mac = (i: number) =>
  `02:00:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

function profile(name: string, config: string): Resource {
  return {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'MatchboxProfile',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      kernel: '/assets/vmlinuz',
      initrd: ['/assets/initramfs.xz'],
      args: [
        'initrd=initramfs.xz',
        'talos.platform=metal',
        `talos.config=http://10.0.20.5:8080/assets/${config}`,
      ],
    },
  };
}

function group(i: number): Resource {
  return {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'MatchboxGroup',
    metadata: { name: `host-${String(i).padStart(5, '0')}`, namespace: NAMESPACE },
    spec: {
      profileRef: { name: i % 10 < 3 ? 'control-plane' : 'worker' },
      selector: { mac: mac(i) },
      metadata: { hostname: `host-${i}`, rack: `r${i % 40}` },
    },
  };
}

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function callCounts(registry: Registry): Promise<Map<string, number>> {
  const metric = registry.getSingleMetric('metalbox_matchbox_calls_total');
  const counts = new Map<string, number>();
  for (const v of (await metric!.get()).values) {
    const key = String(v.labels.operation);
    counts.set(key, (counts.get(key) ?? 0) + v.value);
  }
  return counts;
}

async function main(): Promise<void> {
  const pair = await startMatchboxPair();
  const storeDir = scratchDir('bench-matchbox-store');
  const store = await SqliteStore.open(storeDir.dir);
  const registry = new Registry();
  const files = {
    caFile: pair.pki.ca.certFile,
    certFile: pair.pki.client.certFile,
    keyFile: pair.pki.client.keyFile,
  };
  const section = {
    endpoints: [
      { name: 'a', endpoint: pair.a.rpcEndpoint, httpURL: pair.a.httpURL, tls: files },
      { name: 'b', endpoint: pair.b.rpcEndpoint, httpURL: pair.b.httpURL, tls: files },
    ],
    // Background scans would interleave with the timed phases; they are run explicitly below.
    driftScanIntervalSeconds: 86_400,
    verifyBootAnswers: args.verify,
    workers: Number(args.workers),
  };
  const events = { event() {} };
  const sync = buildMatchboxSync(
    { store, events, logger: silentLogger, registry, namespace: NAMESPACE, config: { matchbox: section } },
    parseMatchboxSyncConfig(section),
  );
  const manager = new Manager({ store, registry, namespace: NAMESPACE });
  for (const spec of sync.controllers) manager.add(spec);
  await manager.start();
  // Counted from the informer's events (cheaper than listing 5,000 objects over and over).
  const groups = manager.informer<GroupObject>(GroupKind);
  const synced = new Set<string>();
  let allSyncedNow: () => void;
  const allGroupsSynced = new Promise<void>((resolve) => {
    allSyncedNow = resolve;
  });
  const verified = new Set<string>();
  let allVerifiedNow: () => void;
  const allGroupsVerified = new Promise<void>((resolve) => {
    allVerifiedNow = resolve;
  });
  const holds = (g: GroupObject, type: string) => {
    const c = g.status?.conditions?.find((x) => x.type === type);
    return c?.status === 'True' && c.observedGeneration === g.metadata.generation;
  };
  const track = (g: GroupObject) => {
    if (holds(g, 'Synced')) synced.add(g.metadata.name);
    else synced.delete(g.metadata.name);
    if (holds(g, 'BootAnswerVerified')) verified.add(g.metadata.name);
    else verified.delete(g.metadata.name);
    if (synced.size === GROUPS) allSyncedNow();
    if (verified.size === GROUPS) allVerifiedNow();
  };
  groups.on('add', track);
  groups.on('update', track);

  try {
    console.log(
      `Matchbox sync benchmark: 2 profiles + ${GROUPS} groups, 2 Matchbox servers, SQLite store, ` +
        `${section.workers} group workers, verifyBootAnswers=${section.verifyBootAnswers}`,
    );
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await store.create(ProfileKind, profile('control-plane', 'controlplane.yaml'));
    await store.create(ProfileKind, profile('worker', 'worker.yaml'));
    // Like a GitOps apply of a directory: many writes in flight (the SQLite store group-commits them).
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < GROUPS) await store.create(GroupKind, group(next++));
      }),
    );
    const applied = performance.now() - t0;
    await allGroupsSynced;
    const allSynced = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const calls = await callCounts(registry);
    const total = [...calls.values()].reduce((a, b) => a + b, 0);
    console.log(`apply (store writes of ${GROUPS + 2} objects): ${secs(applied)}`);
    console.log(
      `apply → all Synced=True:                 ${secs(allSynced)}  (${((GROUPS + 2) / (allSynced / 1000)).toFixed(0)} objects/s)`,
    );
    console.log(`CPU of this process meanwhile:           ${secs((cpu.user + cpu.system) / 1000)}`);
    console.log(
      `gRPC calls:                              ${total}  (${[...calls].map(([k, v]) => `${k} ${v}`).join(', ')})`,
    );
    console.log(`peak RSS so far:                         ${mib(peakRss)}`);
    if (args.verify) {
      await allGroupsVerified;
      const checks = registry.getSingleMetric('metalbox_matchbox_boot_answer_checks_total');
      const count = (await checks!.get()).values.reduce((sum, v) => sum + v.value, 0);
      console.log(
        `apply → all BootAnswerVerified=True:     ${secs(performance.now() - t0)}  (${count} GET /ipxe)`,
      );
    }

    // Steady state: nothing differs, so a scan is two List calls and a comparison per object.
    const scans = Number(args.scans);
    for (const endpoint of sync.pool.endpoints) {
      const times: number[] = [];
      const cpus: number[] = [];
      let summary: ScanSummary | undefined;
      for (let i = 0; i < scans; i++) {
        const c0 = process.cpuUsage();
        const s0 = performance.now();
        summary = await scanEndpoint({ ...sync.driftDeps, events, logger: silentLogger }, endpoint);
        times.push(performance.now() - s0);
        const c = process.cpuUsage(c0);
        cpus.push((c.user + c.system) / 1000);
      }
      const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      console.log(
        `steady drift scan of ${endpoint.name} (${summary!.remote} objects, ${summary!.compared} compared, ` +
          `${summary!.created + summary!.updated + summary!.deleted} repairs): ${secs(avg(times))} wall, ` +
          `${secs(avg(cpus))} CPU (mean of ${scans})`,
      );
    }

    // Refill: b comes back empty; one scan writes everything again.
    await pair.b.stop();
    await pair.b.start({ wipeData: true });
    const before = await callCounts(registry);
    const r0 = performance.now();
    const rc0 = process.cpuUsage();
    const refill = await scanEndpoint(
      { ...sync.driftDeps, events, logger: silentLogger },
      sync.pool.byName('b')!,
    );
    const rc = process.cpuUsage(rc0);
    const after = await callCounts(registry);
    const refillCalls = [...after].reduce((sum, [k, v]) => sum + v - (before.get(k) ?? 0), 0);
    console.log(
      `refill of an empty b (${refill.created} objects written): ${secs(performance.now() - r0)} wall, ` +
        `${secs((rc.user + rc.system) / 1000)} CPU, ${refillCalls} gRPC calls`,
    );
    const maxRss = process.resourceUsage().maxRSS * 1024;
    console.log(`peak RSS of this process:                ${mib(Math.max(peakRss, maxRss))}`);
  } finally {
    clearInterval(sampler);
    await manager.stop();
    await sync.stop();
    await store.close();
    storeDir.remove();
    await pair.destroy();
  }
}

await main();
