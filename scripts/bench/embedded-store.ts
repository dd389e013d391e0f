// Benchmark: the embedded SQLite store shared by processes. A real `metalbox controller --store
// file:<dir>` runs over a store seeded with N BareMetalHosts (paused, so nothing talks to a BMC),
// and beside it, `metalbox apply` of one MatchboxProfile runs as its own process, R times:
//   apply          process start → exit (Node start-up, store open, validation, one write), also
//                  once with no controller on the store, for comparison
//   seen by watch  the "configured" line on apply's stdout → the change arriving in a watch held by
//                  a third process (this one), i.e. cross-process visibility through the poll
// Run: bash scripts/node scripts/bench/embedded-store.ts [--hosts 5000] [--runs 10]
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ProfileKind } from '../../src/controllers/matchbox/kinds.ts';
import { BareMetalHostKind } from '../../src/crds/index.ts';
import type { Resource, ResourceKind } from '../../src/runtime/resource.ts';
import { SqliteStore } from '../../src/stores/sqlite.ts';
import { scratchDir } from '../../test/env/peers.ts';
import { freePort } from '../../test/env/ports.ts';
import { startProcess } from '../../test/env/process.ts';
import { waitFor } from '../../test/env/wait.ts';

const { values } = parseArgs({
  options: { hosts: { type: 'string', default: '5000' }, runs: { type: 'string', default: '10' } },
});
const HOSTS = Math.max(0, Number(values.hosts));
const RUNS = Math.max(1, Number(values.runs));
const NS = 'metalbox-system';
const BMH: ResourceKind = { ...BareMetalHostKind, namespaced: true };
const repo = fileURLToPath(new URL('../../', import.meta.url));

function host(i: number): Resource {
  return {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'BareMetalHost',
    metadata: {
      namespace: NS,
      name: `bench-${String(i).padStart(5, '0')}`,
      annotations: { 'metalbox.io/paused': 'bench' },
    },
    spec: {
      online: false,
      bootMACAddress: `02:00:00:${[(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
      bmc: { address: `redfish://10.255.0.1/redfish/v1/Systems/${i}`, credentialsName: `bench-${i}-bmc` },
    },
  };
}

const profileYaml = (run: number) => `apiVersion: metalbox.io/v1alpha1
kind: MatchboxProfile
metadata:
  name: bench-profile
  namespace: ${NS}
spec:
  kernel: /assets/vmlinuz
  initrd: [/assets/initramfs.xz]
  args: [console=ttyS0, bench.run=${run}]
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const scratch = scratchDir('bench-embedded-store');
  const dir = join(scratch.dir, 'store');
  const seed = await SqliteStore.open(dir);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async (_, lane) => {
      for (let i = lane; i < HOSTS; i += 32) await seed.create(BMH, host(i));
    }),
  );
  process.stderr.write(
    `embedded store: seeded ${HOSTS} hosts in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`,
  );
  const watchStart = (await seed.list(ProfileKind)).resourceVersion;

  const manifest = join(scratch.dir, 'profile.yaml');
  /** One `metalbox apply` process: its wall time and when it printed the acknowledged write. */
  const apply = async (run: number) => {
    writeFileSync(manifest, profileYaml(run));
    const started = performance.now();
    let ackedAt = 0;
    const code = await new Promise<number | null>((resolve) => {
      const p = spawn(
        'bash',
        ['scripts/node', 'src/cli/main.ts', 'apply', '-f', manifest, '--store', `file:${dir}`],
        {
          cwd: repo,
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      p.stdout.setEncoding('utf8').on('data', (c: string) => {
        if (!ackedAt && / (created|configured)\n/.test(c)) ackedAt = performance.now();
      });
      p.once('exit', resolve);
    });
    if (code !== 0 || !ackedAt) throw new Error(`apply run ${run} failed (exit ${code})`);
    return { ms: performance.now() - started, ackedAt };
  };
  // The same apply with nothing else on the store, for comparison (runs 1001...).
  const aloneMs: number[] = [];
  for (let run = 1; run <= RUNS; run++) aloneMs.push((await apply(1000 + run)).ms);

  const port = await freePort();
  const controller = startProcess({
    name: 'bench-controller',
    command: 'bash',
    args: [
      'scripts/node',
      'src/cli/main.ts',
      'controller',
      '--store',
      `file:${dir}`,
      '--metrics-addr',
      `127.0.0.1:${port}`,
      '--log-level',
      'warn',
    ],
    logDir: scratch.dir,
    cwd: repo,
  });
  const seen = new Map<number, number>();
  const ac = new AbortController();
  const watching = (async () => {
    for await (const e of seed.watch(ProfileKind, {
      resourceVersion: watchStart,
      signal: ac.signal,
    })) {
      if (e.type === 'BOOKMARK') continue;
      const args = (e.object.spec as { args?: string[] }).args ?? [];
      const run = Number(args.find((a) => a.startsWith('bench.run='))?.slice('bench.run='.length));
      if (!seen.has(run)) seen.set(run, performance.now());
    }
  })().catch(() => {});
  const applyMs: number[] = [];
  const visibleMs: number[] = [];
  try {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
      {
        what: 'the controller to be ready',
        timeoutMs: 120_000,
        context: () => controller.tail(),
      },
    );
    for (let run = 1; run <= RUNS; run++) {
      const { ms, ackedAt } = await apply(run);
      applyMs.push(ms);
      await waitFor(async () => seen.has(run), { what: `run ${run} in the watch`, timeoutMs: 10_000 });
      visibleMs.push(Math.max(0, seen.get(run)! - ackedAt));
    }
    if (!controller.isRunning()) throw new Error(`the controller exited:\n${controller.tail()}`);
  } finally {
    ac.abort();
    await watching;
    await controller.stop(15_000).catch(() => controller.kill());
    await seed.close();
    scratch.remove();
  }
  const rows = [
    ['phase', 'runs', 'median', 'max'],
    [
      'apply (process, store not otherwise in use)',
      String(RUNS),
      `${median(aloneMs).toFixed(0)} ms`,
      `${Math.max(...aloneMs).toFixed(0)} ms`,
    ],
    [
      'apply (process, beside the controller)',
      String(RUNS),
      `${median(applyMs).toFixed(0)} ms`,
      `${Math.max(...applyMs).toFixed(0)} ms`,
    ],
    [
      'seen by a watch in another process',
      String(RUNS),
      `${median(visibleMs).toFixed(0)} ms`,
      `${Math.max(...visibleMs).toFixed(0)} ms`,
    ],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stderr.write(
    `embedded store: controller over ${HOSTS} hosts, ${RUNS} applies of one MatchboxProfile\n`,
  );
  for (const r of rows)
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `embedded-store bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
