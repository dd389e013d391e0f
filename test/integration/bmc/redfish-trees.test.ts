// The Redfish driver against eleven real vendors' trees (DMTF mockups; Dell iDRAC 8 and 9, HPE iLO 5,
// Lenovo XCC, Supermicro X12, an OpenBMC-based NVIDIA GB300), served by our mockup server
// (test/env/redfish-mockup.ts). Every tree: power-status, inventory field by field against the
// tree's own JSON, power on/off/cycle/graceful, boot-once pxe and disk in the tree's mode and the
// other, the several-Systems hint pasted back; plus the vendor quirks each tree shows.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { parseBmcAddress } from '../../../src/bmc/address.ts';
import { staticCredentials } from '../../../src/bmc/credentials.ts';
import type { BmcDriver, BmcNotice, Inventory } from '../../../src/bmc/driver.ts';
import { BmcAddressError, BmcProtocolError, BmcUnsupportedError } from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import { roundGiB } from '../../../src/bmc/redfish/driver.ts';
import {
  type MockupOptions,
  REDFISH_TREES,
  type RedfishMockup,
  type RedfishTree,
  startRedfishMockup,
} from '../../env/redfish-mockup.ts';
import { waitFor } from '../../env/wait.ts';

type Json = Record<string, unknown>;
const link = (r: Json | undefined, key: string) =>
  (r?.[key] as { '@odata.id'?: string } | null)?.['@odata.id'];
const members = (r: Json | undefined) =>
  ((r?.Members as { '@odata.id': string }[] | undefined) ?? []).map((m) => m['@odata.id']);
const clean = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

const started: RedfishMockup[] = [];
after(async () => {
  await Promise.all(started.map((m) => m.close()));
});

async function mockup(tree: RedfishTree, opts: Omit<MockupOptions, 'tree'> = {}): Promise<RedfishMockup> {
  const m = await startRedfishMockup({ tree, transitionMs: 300, sessions: true, ...opts });
  started.push(m);
  return m;
}

function driverFor(
  m: RedfishMockup,
  opts: { system?: string; scheme?: string; notices?: BmcNotice[] } = {},
): BmcDriver {
  const factory = createBmcFactory({
    redfish: { pollIntervalMs: 50, retries: 0, powerChangeTimeoutMs: 5000, requestTimeoutMs: 5000 },
  });
  return factory.create({
    address: `${opts.scheme ?? 'redfish+http'}://${m.host}:${m.port}${opts.system ?? ''}`,
    credentials: staticCredentials(m.username, m.password),
    addressField: '--address',
    ...(opts.notices ? { onNotice: (n: BmcNotice) => opts.notices!.push(n) } : {}),
  });
}

/** The Systems to drive: those the tree gives a Reset action (GB300's HGX baseboard has none). */
function manageable(m: RedfishMockup): string[] {
  return m.systems.filter(
    (s) => (m.original(s)?.Actions as Json | undefined)?.['#ComputerSystem.Reset'] !== undefined,
  );
}

/** Inventory computed from the tree's raw JSON, independently of the driver, with what must be named. */
function expectedInventory(m: RedfishMockup, system: string): { inventory: Inventory; missing: string[] } {
  const sys = m.original(system)!;
  const missing: string[] = [];
  const read = (path: string | undefined): Json | undefined => {
    if (!path) return undefined;
    const r = m.original(path);
    if (!r) missing.push(path.replace(/\/+$/, ''));
    return r;
  };
  const readMembers = (path: string | undefined) => {
    const coll = read(path);
    return coll
      ? members(coll)
          .map((p) => read(p))
          .filter((r): r is Json => r !== undefined)
      : [];
  };
  const nics = readMembers(link(sys, 'EthernetInterfaces')).flatMap((n) => {
    const mac = clean(n.MACAddress) ?? clean(n.PermanentMACAddress);
    return mac ? [mac.toLowerCase().replaceAll('-', ':')] : [];
  });
  let disks: (number | undefined)[] = [];
  for (const controller of readMembers(link(sys, 'Storage'))) {
    for (const d of ((controller.Drives as { '@odata.id': string }[] | undefined) ?? []).map((l) =>
      read(l['@odata.id']),
    )) {
      if (d) disks.push(typeof d.CapacityBytes === 'number' ? d.CapacityBytes : undefined);
    }
  }
  if (disks.length === 0 && link(sys, 'SimpleStorage')) {
    disks = readMembers(link(sys, 'SimpleStorage')).flatMap((c) =>
      ((c.Devices as Json[] | undefined) ?? []).map((d) =>
        typeof d.CapacityBytes === 'number' ? d.CapacityBytes : undefined,
      ),
    );
  }
  const summary = (sys.ProcessorSummary ?? {}) as Json;
  let cpuModel = clean(summary.Model);
  let cpuCount = typeof summary.Count === 'number' ? summary.Count : undefined;
  if ((!cpuModel || cpuCount === undefined) && link(sys, 'Processors')) {
    const cpus = readMembers(link(sys, 'Processors')).filter(
      (p) => (clean(p.ProcessorType) ?? 'CPU') === 'CPU',
    );
    cpuModel ??= cpus.map((p) => clean(p.Model)).find(Boolean);
    if (cpuCount === undefined && cpus.length > 0) cpuCount = cpus.length;
  }
  let memory = (sys.MemorySummary as Json | undefined)?.TotalSystemMemoryGiB as number | undefined;
  if (memory === undefined && link(sys, 'Memory')) {
    const mib = readMembers(link(sys, 'Memory')).reduce((s, d) => s + ((d.CapacityMiB as number) ?? 0), 0);
    if (mib > 0) memory = mib / 1024;
  }
  const inventory: Inventory = {
    ...(clean(sys.Manufacturer) ? { manufacturer: clean(sys.Manufacturer)! } : {}),
    ...(clean(sys.Model) ? { model: clean(sys.Model)! } : {}),
    ...(clean(sys.SerialNumber) ? { serialNumber: clean(sys.SerialNumber)! } : {}),
    ...(clean(sys.UUID) ? { uuid: clean(sys.UUID)!.toLowerCase() } : {}),
    cpu: { ...(cpuCount !== undefined ? { count: cpuCount } : {}), ...(cpuModel ? { model: cpuModel } : {}) },
    ...(memory !== undefined ? { memoryGiB: roundGiB(memory) } : {}),
    nics: nics.map((mac) => ({ mac }) as Inventory['nics'][number]),
    disks: disks.map((sizeBytes) => (sizeBytes !== undefined ? { sizeBytes } : {})),
    incomplete: [],
  };
  return { inventory, missing };
}

const powerOf = (m: RedfishMockup, system: string) => m.resource(system)?.PowerState;
const resetsSent = (m: RedfishMockup) =>
  m.requests
    .filter((r) => r.method === 'POST' && r.path.includes('Reset'))
    .map((r) => (r.body as Json).ResetType);

for (const tree of REDFISH_TREES) {
  describe(`tree ${tree}`, () => {
    test('power-status and inventory of every System match the tree (several Systems: the hint, pasted back)', async () => {
      const m = await mockup(tree);
      let systems = [m.systems[0]!];
      if (m.systems.length > 1) {
        const generic = driverFor(m);
        const error = await generic.powerState().then(
          () => undefined,
          (e: unknown) => e,
        );
        await generic.close();
        assert.ok(error instanceof BmcAddressError, String(error));
        assert.equal(error.field, '--address');
        const hinted = [
          ...error.message.matchAll(/redfish\+http:\/\/127\.0\.0\.1:\d+\/redfish\/v1\/Systems\/[^,\s]+/g),
        ].map((x) => x[0]);
        assert.equal(hinted.length, m.systems.length, error.message);
        // Each hint is a working address as written, including +http and the port.
        for (const address of hinted) parseBmcAddress(address, '--address');
        systems = hinted.map((a) => new URL(a.replace(/^redfish\+http/, 'http')).pathname);
        assert.deepEqual(systems, m.systems);
      }
      for (const system of systems) {
        const driver = driverFor(m, { system });
        try {
          const want = m.original(system)!.PowerState === 'On' ? 'on' : 'off';
          assert.equal(await driver.powerState(), want, system);
          const got = await driver.inventory();
          const { inventory, missing } = expectedInventory(m, system);
          assert.equal(got.manufacturer, inventory.manufacturer, `${system} manufacturer`);
          assert.equal(got.model, inventory.model, `${system} model`);
          assert.equal(got.serialNumber, inventory.serialNumber, `${system} serial`);
          assert.equal(got.uuid, inventory.uuid, `${system} uuid`);
          assert.deepEqual(got.cpu, inventory.cpu, `${system} cpu`);
          assert.equal(got.memoryGiB, inventory.memoryGiB, `${system} memory`);
          assert.deepEqual(
            got.nics.map((n) => n.mac),
            inventory.nics.map((n) => n.mac),
            `${system} nics`,
          );
          assert.deepEqual(
            got.disks.map((d) => d.sizeBytes),
            inventory.disks.map((d) => d.sizeBytes),
            `${system} disks`,
          );
          // Whatever the tree links to but lacks is named in incomplete, by path.
          for (const path of missing) {
            assert.ok(
              got.incomplete.some((i) => i.includes(path)),
              `${system}: ${path} missing from incomplete ${JSON.stringify(got.incomplete)}`,
            );
          }
          if (missing.length === 0 && got.cpu.model && got.memoryGiB !== undefined)
            assert.ok(!got.incomplete.some((i) => /HTTP/.test(i)), JSON.stringify(got.incomplete));
        } finally {
          await driver.close();
        }
      }
    });

    test('power off, on, cycle and graceful off change the PowerState as the tree allows', async () => {
      const m = await mockup(tree);
      for (const system of manageable(m)) {
        const notices: BmcNotice[] = [];
        const driver = driverFor(m, { system, notices });
        try {
          await driver.powerOff();
          assert.equal(powerOf(m, system), 'Off');
          await driver.powerOn();
          assert.equal(powerOf(m, system), 'On');
          const before = resetsSent(m).length;
          await driver.reboot({ mode: 'hard' });
          const cycle = resetsSent(m).slice(before);
          assert.ok(
            cycle.some((t) => t === 'ForceRestart' || t === 'PowerCycle') ||
              (cycle.includes('ForceOff') && cycle.includes('On')),
            `${system}: ${cycle.join(', ')}`,
          );
          await waitFor(async () => powerOf(m, system) === 'On', {
            what: `${system} on after cycle`,
            timeoutMs: 5000,
          });

          const allowed = (() => {
            const action = (m.original(system)!.Actions as Json)['#ComputerSystem.Reset'] as Json;
            const listed = action['ResetType@Redfish.AllowableValues'] as string[] | undefined;
            if (listed) return listed;
            const info = action['@Redfish.ActionInfo'] as string | undefined;
            const params = info ? (m.original(info)?.Parameters as Json[] | undefined) : undefined;
            return (
              (params?.find((p) => p.Name === 'ResetType')?.AllowableValues as string[] | undefined) ??
              undefined
            );
          })();
          const graceful =
            allowed === undefined || allowed.some((t) => t === 'GracefulShutdown' || t === 'PushPowerButton');
          if (graceful) {
            await driver.powerOff({ graceful: true, timeoutMs: 5000 });
            assert.equal(powerOf(m, system), 'Off');
            await driver.powerOn();
            // Soft reboot: GracefulRestart where offered, else a graceful shutdown and power on.
            const sent = resetsSent(m).length;
            await driver.reboot({ mode: 'soft', timeoutMs: 5000 });
            const soft = resetsSent(m).slice(sent);
            if (allowed === undefined || allowed.includes('GracefulRestart')) {
              assert.deepEqual(soft, ['GracefulRestart'], system);
            } else {
              assert.ok(['GracefulShutdown', 'PushPowerButton'].includes(String(soft[0])), soft.join(','));
              assert.equal(soft.at(-1), 'On', soft.join(','));
              assert.ok(!soft.includes('ForceOff'), `${system}: forced: ${soft.join(',')}`);
            }
            await waitFor(async () => powerOf(m, system) === 'On', {
              what: `${system} on after soft reboot`,
              timeoutMs: 5000,
            });
            assert.deepEqual(notices, []);
          } else {
            // Supermicro X12: no graceful type; refused unless forcing is allowed, and then said.
            await assert.rejects(driver.powerOff({ graceful: true, timeoutMs: 2000 }), (error: unknown) => {
              assert.ok(error instanceof BmcUnsupportedError);
              assert.match(
                error.message,
                /a graceful power off .*only a forced power off is possible.*--force/,
              );
              return true;
            });
            assert.equal(powerOf(m, system), 'On');
            await assert.rejects(driver.reboot({ mode: 'soft' }), BmcUnsupportedError);
            await driver.powerOff({ graceful: true, timeoutMs: 2000, allowForced: true });
            assert.equal(powerOf(m, system), 'Off');
            assert.deepEqual(
              notices.map((n) => n.code),
              ['GracefulUnavailable'],
            );
          }
          await driver.powerOn();
        } finally {
          await driver.close();
        }
      }
    });

    test('boot-once pxe and disk: the mode is untouched unless asked; the other mode as the BMC allows', async () => {
      const m = await mockup(tree);
      for (const system of manageable(m)) {
        const boot = m.original(system)!.Boot as Json | undefined;
        const notices: BmcNotice[] = [];
        const driver = driverFor(m, { system, notices });
        try {
          if (!boot) {
            await assert.rejects(driver.setBootOnce({ device: 'pxe' }), BmcUnsupportedError);
            continue;
          }
          const own = boot.BootSourceOverrideMode as string | undefined;
          const live = () => m.resource(system)!.Boot as Json;
          for (const device of ['pxe', 'disk'] as const) {
            const target = device === 'pxe' ? 'Pxe' : 'Hdd';
            // No mode asked: the mode stays what it was.
            const plain = await driver.setBootOnce({ device });
            assert.equal(live().BootSourceOverrideTarget, target);
            assert.equal(live().BootSourceOverrideEnabled, 'Once');
            assert.equal(live().BootSourceOverrideMode, own, `${system}: mode changed by a plain boot-once`);
            assert.deepEqual(plain.readBack.enabled, 'Once');
            assert.equal(plain.readBack.device, device);
            assert.equal(plain.honoured, true);
            assert.equal(plain.persistent, false);
            // The tree's own mode, asked for explicitly: still no change.
            if (own) {
              await driver.setBootOnce({ device, mode: own === 'UEFI' ? 'UEFI' : 'legacy' });
              assert.equal(live().BootSourceOverrideMode, own);
            }
          }
          assert.equal(m.biosJobs.get(system) ?? 0, 0, 'no BIOS job without a mode change');
          const patches = m.requests.filter((r) => r.method === 'PATCH').map((r) => r.body as { Boot: Json });
          if (tree === 'supermicro-x12') {
            // Supermicro falls back to Legacy when the mode is omitted: the current one is always sent.
            assert.ok(
              patches.every((p) => p.Boot.BootSourceOverrideMode === own),
              JSON.stringify(patches),
            );
          } else {
            assert.ok(
              patches.every((p) => p.Boot.BootSourceOverrideMode === undefined),
              JSON.stringify(patches),
            );
          }

          // The other mode.
          const other = own === 'UEFI' ? 'legacy' : 'UEFI';
          if (!own) {
            const r = await driver.setBootOnce({ device: 'pxe', mode: 'legacy' });
            assert.equal(r.readBack.device, 'pxe');
            assert.ok(
              notices.some((n) => n.code === 'BootModeUnavailable'),
              JSON.stringify(notices),
            );
            assert.equal('BootSourceOverrideMode' in live(), false);
          } else if (tree === 'hpe-ilo5-dl180') {
            await assert.rejects(driver.setBootOnce({ device: 'pxe', mode: other }), /in the BIOS settings/);
            assert.equal(live().BootSourceOverrideMode, own);
          } else {
            const r = await driver.setBootOnce({ device: 'pxe', mode: other });
            assert.equal(live().BootSourceOverrideMode, other === 'UEFI' ? 'UEFI' : 'Legacy');
            assert.equal(r.readBack.mode, other);
            if (tree.startsWith('dell-')) assert.equal(m.biosJobs.get(system), 1);
          }
        } finally {
          await driver.close();
        }
      }
    });
  });
}

describe('quirks the trees show', () => {
  test('a BMC that keeps Once as Continuous: the read-back says so, once, and the driver reports it', async () => {
    const m = await mockup('dell-idrac-r6515', { onceReadsBackAs: 'Continuous' });
    const notices: BmcNotice[] = [];
    const driver = driverFor(m, { scheme: 'idrac-redfish+http', notices });
    try {
      const r = await driver.setBootOnce({ device: 'pxe' });
      assert.deepEqual(r.readBack, { enabled: 'Continuous', device: 'pxe', target: 'Pxe', mode: 'legacy' });
      assert.equal(r.persistent, true);
      assert.equal(r.honoured, true);
      assert.deepEqual(
        notices.map((n) => n.code),
        ['BootOverridePersistent'],
      );
      // What the boot lab does after an install: point it at disk for good, or clear it.
      const disk = await driver.setBootOverride({ device: 'disk', enabled: 'Continuous' });
      assert.deepEqual(
        [disk.readBack.enabled, disk.readBack.device, disk.persistent],
        ['Continuous', 'disk', false],
      );
      const cleared = await driver.clearBootOverride();
      assert.equal(cleared.enabled, 'Disabled');
      assert.equal((await driver.bootOverride()).enabled, 'Disabled');
    } finally {
      await driver.close();
    }
  });

  test('generic redfish:// on iLO 5: the service root picks the iLO quirks and says which scheme to write', async () => {
    const m = await mockup('hpe-ilo5-dl180');
    const notices: BmcNotice[] = [];
    const driver = driverFor(m, { notices });
    try {
      await driver.setBootOnce({ device: 'pxe', mode: 'UEFI' });
      const patch = m.requests.find((r) => r.method === 'PATCH')?.body as { Boot: Json };
      assert.equal(patch.Boot.BootSourceOverrideMode, undefined);
      assert.deepEqual(
        notices.map((n) => n.code),
        ['VendorDetected'],
      );
      assert.match(notices[0]!.message, /ilo5-redfish\+http:\/\/127\.0\.0\.1:\d+/);
    } finally {
      await driver.close();
    }
  });

  test('a 400 to a boot PATCH on a generic address of a Dell names idrac-redfish://', async () => {
    // This iDRAC refuses mode writes (as iLO does); the error says which scheme to use.
    const m = await mockup('dell-idrac-r6515', { quirks: { bootModeReadOnly: true } });
    const driver = driverFor(m);
    try {
      await assert.rejects(driver.setBootOnce({ device: 'pxe', mode: 'UEFI' }), (error: unknown) => {
        assert.ok(error instanceof BmcProtocolError);
        assert.equal(error.status, 400);
        assert.match(error.message, /HTTP 400.*read only.*use idrac-redfish\+http:\/\/127\.0\.0\.1:\d+/);
        return true;
      });
    } finally {
      await driver.close();
    }
  });

  test('XCC: drives that 404 are named, the inventory keeps the rest', async () => {
    const m = await mockup('lenovo-xcc');
    const driver = driverFor(m);
    try {
      const inv = await driver.inventory();
      assert.deepEqual(
        inv.nics.map((n) => n.mac),
        ['7c:d3:0a:44:55:66'],
      );
      assert.deepEqual(inv.disks, []);
      assert.ok(
        inv.incomplete.some((i) =>
          /^disk \/redfish\/v1\/Systems\/1\/Storage\/RAID_Slot1\/Drives\/Disk\.0: HTTP 404$/.test(i),
        ),
        JSON.stringify(inv.incomplete),
      );
      assert.ok(inv.incomplete.some((i) => /Disk\.1: HTTP 404$/.test(i)));
    } finally {
      await driver.close();
    }
  });

  test('GB300: the CPU comes from a Processor of type CPU, not a GPU; a missing one is named', async () => {
    const m = await mockup('nvidia-gb300-openbmc');
    const driver = driverFor(m, { system: '/redfish/v1/Systems/System_0' });
    try {
      const inv = await driver.inventory();
      assert.equal(inv.cpu.count, 1);
      assert.doesNotMatch(inv.cpu.model ?? '', /GPU|GB|H100|B200/i);
      assert.ok(
        inv.incomplete.some((i) =>
          /^processor \/redfish\/v1\/Systems\/\w+\/Processors\/CPU_1: HTTP 404$/.test(i),
        ),
        JSON.stringify(inv.incomplete),
      );
    } finally {
      await driver.close();
    }
  });

  test('iDRAC 8: a fractional TotalSystemMemoryGiB is rounded to two decimals', async () => {
    const m = await mockup('dell-idrac-r820');
    const driver = driverFor(m);
    try {
      assert.equal((await driver.inventory()).memoryGiB, 476.84);
    } finally {
      await driver.close();
    }
  });

  test('session login refused: Basic auth is used and said once; with sessions served, no notice', async () => {
    const m = await mockup('dmtf-rackmount1', { sessions: false });
    const notices: BmcNotice[] = [];
    const driver = driverFor(m, { notices });
    try {
      await driver.powerState();
      await driver.inventory();
      assert.deepEqual(
        notices.map((n) => n.code),
        ['BasicAuthFallback'],
      );
      assert.match(notices[0]!.message, /HTTP 405.*every request carries the password/);
      assert.ok(!notices[0]!.message.includes(m.password));
    } finally {
      await driver.close();
    }
    const withSessions = await mockup('dmtf-rackmount1', { sessions: true });
    const quiet: BmcNotice[] = [];
    const d2 = driverFor(withSessions, { notices: quiet });
    try {
      await d2.powerState();
      assert.deepEqual(quiet, []);
      assert.ok(withSessions.requests.some((r) => r.auth === 'token'));
      assert.equal(withSessions.liveSessions(), 1);
    } finally {
      await d2.close();
    }
    assert.equal(withSessions.liveSessions(), 0);
  });
});
