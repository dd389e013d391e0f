// Benchmark: latency of BMC operations through the drivers (with protection, as the controller uses
// them) against sushy-tools (Redfish, fake driver) and OpenIPMI's ipmi_sim (IPMI lanplus via ipmitool),
// both on loopback. Prints a small table. Run: bash scripts/node scripts/bench/bmc.ts [--iterations N]
import { parseArgs } from 'node:util';
import { staticCredentials } from '../../src/bmc/credentials.ts';
import type { BmcDriver } from '../../src/bmc/driver.ts';
import { createBmcFactory } from '../../src/bmc/factory.ts';
import { startIpmiSim } from '../../test/env/ipmisim.ts';
import { peerBinary } from '../../test/env/peers.ts';
import { startSushy } from '../../test/env/sushy.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '30' } } });
const iterations = Math.max(1, Number(values.iterations));
const cycles = Math.max(1, Math.round(iterations / 6));
// ipmi_sim only powers off on `chassis power cycle`; the driver powers on after this settle time.
const IPMI_CYCLE_SETTLE_MS = 1000;

interface Row {
  emulator: string;
  operation: string;
  samples: number[];
  note?: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function measure(driver: BmcDriver, emulator: string, cycleNote: string): Promise<Row[]> {
  const cold = await time(() => driver.powerState());
  const reads: number[] = [];
  for (let i = 0; i < iterations; i++) reads.push(await time(() => driver.powerState()));
  await driver.powerOn();
  const bootCycle: number[] = [];
  for (let i = 0; i < cycles; i++) {
    bootCycle.push(
      await time(async () => {
        await driver.setBootOnce({ device: 'pxe', mode: 'UEFI' });
        await driver.reboot({ mode: 'hard' });
      }),
    );
  }
  return [
    { emulator, operation: 'power state, first call', samples: [cold], note: 'discovery / cipher fallback' },
    { emulator, operation: 'power state', samples: reads },
    { emulator, operation: 'boot-once PXE + power cycle', samples: bootCycle, note: cycleNote },
  ];
}

function table(rows: Row[]): string {
  const header = ['emulator', 'operation', 'n', 'p50 ms', 'p95 ms', 'max ms', 'note'];
  const body = rows.map((r) => {
    const sorted = [...r.samples].sort((a, b) => a - b);
    return [
      r.emulator,
      r.operation,
      String(sorted.length),
      percentile(sorted, 50).toFixed(1),
      percentile(sorted, 95).toFixed(1),
      sorted[sorted.length - 1]!.toFixed(1),
      r.note ?? '',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const [sushy, sim] = await Promise.all([
  startSushy({ name: 'bench-sushy', systems: [{ name: 'bench-01', macs: ['52:54:00:ff:00:01'] }] }),
  startIpmiSim({ name: 'bench-ipmi' }),
]);
try {
  const factory = createBmcFactory({
    ipmi: { ipmitool: peerBinary('ipmitool'), cycleSettleMs: IPMI_CYCLE_SETTLE_MS, pollIntervalMs: 200 },
  });
  const redfish = factory.create({
    address: `redfish+http://127.0.0.1:${sushy.port}`,
    credentials: staticCredentials(sushy.username, sushy.password),
  });
  const ipmi = factory.create({
    address: `ipmi://127.0.0.1:${sim.port}`,
    credentials: staticCredentials(sim.username, sim.password),
  });
  const rows = [
    ...(await measure(redfish, 'sushy-tools 2.2.0 (Redfish)', 'PATCH + ForceRestart accepted')),
    ...(await measure(ipmi, 'ipmi_sim (IPMI lanplus)', `incl. ${IPMI_CYCLE_SETTLE_MS} ms settle + power on`)),
  ];
  await redfish.close();
  process.stdout.write(
    `BMC driver latency on loopback (${iterations} reads, ${cycles} boot+cycle runs each)\n`,
  );
  process.stdout.write(`${table(rows)}\n`);
} finally {
  await Promise.all([sushy.destroy(), sim.destroy()]);
}
