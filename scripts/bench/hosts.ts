// Benchmark: N BareMetalHosts (default 200) from apply to all provisioned. A real `metalbox
// controller` process on a real kube-apiserver, two Matchbox servers, sushy-tools with N fake
// systems, and N SIMULATED machines in this process. Reports wall time, the controller process's
// CPU and peak RSS (from /proc), and BMC operations per host (the controller's own metrics).
//
//   bash scripts/node scripts/bench/hosts.ts [--hosts 200] [--limit 20] [--install-ms 2000]
//                                            [--machine-poll-ms 2000] [--bmc-concurrency 32]
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { HOST_KIND } from '../../src/controllers/baremetalhost/kinds.ts';
import type { BareMetalHost } from '../../src/crds/baremetalhost.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { scratchDir } from '../../test/env/peers.ts';
import { freePort } from '../../test/env/ports.ts';
import { NAMESPACE, World } from '../../test/integration/baremetalhost/world.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '200' },
    limit: { type: 'string', default: '20' },
    'install-ms': { type: 'string', default: '2000' },
    'machine-poll-ms': { type: 'string', default: '2000' },
    'bmc-concurrency': { type: 'string', default: '32' },
    'timeout-s': { type: 'string', default: '1800' },
  },
});
const N = Number(values.hosts);
const log = (s: string) => process.stdout.write(`${s}\n`);

/** utime+stime (s) and peak RSS (MiB) of every process in a process group. */
function groupUsage(pgid: number): { cpuS: number; peakRssMiB: number } {
  const tick = 100; // USER_HZ on Linux
  let cpu = 0;
  let peak = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue; // field 5: pgrp
      cpu += (Number(fields[11]) + Number(fields[12])) / tick; // utime, stime
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      if (hwm) peak = Math.max(peak, Number(hwm[1]) / 1024);
    } catch {
      // the process went away
    }
  }
  return { cpuS: cpu, peakRssMiB: peak };
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

const scratch = scratchDir('bench-hosts');
log(
  `bench: ${N} hosts, provisioning limit ${values.limit}; starting kube-apiserver, Matchbox pair, sushy-tools ...`,
);
const world = await World.start({
  backend: 'kube',
  systems: N,
  hostConfig: {
    provisioningLimit: Number(values.limit),
    waitPollSeconds: 2,
    powerPollSeconds: 60,
    powerSettleSeconds: 20,
    provisioningTimeoutSeconds: 900,
    errorBackoff: { baseSeconds: 2, capSeconds: 30 },
    workers: 16,
    bmc: {
      perBmcConcurrency: Number(values['bmc-concurrency']),
      globalConcurrency: 64,
      requestTimeoutSeconds: 20,
    },
  },
});
world.machineSettings = {
  pollMs: Number(values['machine-poll-ms']),
  installMs: Number(values['install-ms']),
};
const port = await freePort();
const controller = world.spawnController(scratch.dir, 'bench-controller', [
  '--metrics-addr',
  `127.0.0.1:${port}`,
  '--log-level',
  'warn',
]);
let exit = 0;
try {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
    } catch {}
    await sleep(200);
  }
  const idle = groupUsage(controller.pid);
  const started = Date.now();
  const names = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(3, '0')}`);
  for (let i = 0; i < N; i += 20) {
    await Promise.all(names.slice(i, i + 20).map((name, j) => world.addHost(name, world.systems[i + j]!)));
  }
  const applied = Date.now();
  log(`applied ${N} hosts (+ Secrets) in ${((applied - started) / 1000).toFixed(1)} s`);
  const deadline = started + Number(values['timeout-s']) * 1000;
  let provisioned = 0;
  let lastReport = 0;
  while (Date.now() < deadline) {
    const hosts = (await world.store.list<BareMetalHost & Resource>(HOST_KIND, { namespace: NAMESPACE }))
      .items;
    provisioned = hosts.filter((h) => h.status?.provisioning?.state === 'provisioned').length;
    if (Date.now() - lastReport > 15_000) {
      const usage = groupUsage(controller.pid);
      log(
        `  ${Math.round((Date.now() - started) / 1000)} s: ${provisioned}/${N} provisioned; controller CPU ${(usage.cpuS - idle.cpuS).toFixed(1)} s, RSS peak ${usage.peakRssMiB.toFixed(0)} MiB`,
      );
      lastReport = Date.now();
    }
    if (provisioned === N) break;
    await sleep(1000);
  }
  const wall = (Date.now() - started) / 1000;
  const usage = groupUsage(controller.pid);
  const bmcOps = await metric(port, 'metalbox_bmc_operations_total');
  const installs = [...world.machines.values()].reduce((n, m) => n + m.installs, 0);
  log('');
  log(`hosts provisioned:        ${provisioned}/${N}`);
  log(`wall time (apply → all):  ${wall.toFixed(1)} s`);
  log(
    `controller CPU:           ${(usage.cpuS - idle.cpuS).toFixed(1)} s (user+system, whole process group)`,
  );
  log(`controller peak RSS:      ${usage.peakRssMiB.toFixed(0)} MiB`);
  log(`BMC operations:           ${bmcOps} (${(bmcOps / N).toFixed(1)} per host)`);
  log(`installs (SIMULATION):    ${installs}`);
  if (provisioned !== N) exit = 1;
} finally {
  await controller.kill();
  await world.close();
  scratch.remove();
}
process.exit(exit);
