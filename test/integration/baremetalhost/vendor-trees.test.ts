// BareMetalHosts on real vendors' Redfish trees (iDRAC 9, iLO 5, XCC, Supermicro X12, and a BMC that
// keeps Once as Continuous) served by our mockup server, each with a SIMULATED machine walking the real
// boot chain against the real Matchbox pair: every one reaches `provisioned`, and what each vendor
// does shows in status and Events (boot mode never changed unasked, vendor detected from the service
// root, a partial inventory named, the Basic fallback said once, the Once read-back recorded).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BMH_ANNOTATIONS } from '../../../src/crds/baremetalhost.ts';
import {
  type MockupOptions,
  type RedfishMockup,
  type RedfishTree,
  startRedfishMockup,
} from '../../env/redfish-mockup.ts';
import { type Host, mockupHostSystem, World } from './world.ts';

let world: World;
const mockups: RedfishMockup[] = [];
before(async () => {
  world = await World.start({ backend: 'file', systems: 1 });
  await world.startController();
});
after(async () => {
  await world?.close();
  await Promise.all(mockups.map((m) => m.close()));
});

async function tree(name: RedfishTree, opts: Omit<MockupOptions, 'tree'> = {}) {
  // A restart keeps the System off long enough for the simulated machine (300 ms polls) to see it.
  const m = await startRedfishMockup({ tree: name, transitionMs: 1500, sessions: true, ...opts });
  mockups.push(m);
  return m;
}

const condition = (h: Host, type: string) => h.status?.conditions?.find((c) => c.type === type);
const overridePatches = (m: RedfishMockup, system: string) =>
  m.requests
    .filter((r) => r.method === 'PATCH' && r.path === system)
    .map((r) => (r.body as { Boot: Record<string, string> }).Boot)
    // The simulated firmware's own "override used" PATCH carries only the target.
    .filter((b) => b.BootSourceOverrideEnabled !== undefined);

test('iDRAC 9 (Legacy), iLO 5 on a plain redfish:// address, XCC and Supermicro X12 hosts reach provisioned', async () => {
  const idrac = await tree('dell-idrac-r6515');
  const ilo = await tree('hpe-ilo5-dl180');
  const xcc = await tree('lenovo-xcc');
  const smc = await tree('supermicro-x12', { sessions: false });
  // One host found powered off (boot-once + power on), the others running (boot-once + cycle).
  smc.setPower(smc.systems[0]!, 'Off');
  const hosts = [
    {
      name: 'dell-r6515',
      m: idrac,
      system: mockupHostSystem(idrac, { scheme: 'idrac-redfish+http', mac: '52:54:00:14:00:01' }),
    },
    { name: 'hpe-dl180', m: ilo, system: mockupHostSystem(ilo, { mac: '52:54:00:14:00:02' }) },
    { name: 'lenovo-sr650', m: xcc, system: mockupHostSystem(xcc) },
    { name: 'smc-x12', m: smc, system: mockupHostSystem(smc) },
  ];
  for (const h of hosts)
    await world.addHost(h.name, h.system, { username: h.m.username, password: h.m.password });
  for (const h of hosts) await world.waitForState(h.name, 'provisioned', 180_000);

  for (const { name, m } of hosts) {
    const system = m.systems[0]!;
    const host = await world.host(name);
    const events = await world.events(name);
    const patches = overridePatches(m, system);
    assert.ok(
      patches.some((b) => b.BootSourceOverrideEnabled === 'Once' && b.BootSourceOverrideTarget === 'Pxe'),
      `${name}: ${JSON.stringify(patches)}`,
    );
    assert.equal(
      condition(host, 'BootOverride')?.status,
      'True',
      `${name}: ${JSON.stringify(host.status?.conditions)}`,
    );
    assert.ok(
      events.some((e) => e.reason === 'NetworkBoot'),
      name,
    );
    const mode = (m.resource(system)!.Boot as Record<string, string>).BootSourceOverrideMode;
    const original = (m.original(system)!.Boot as Record<string, string>).BootSourceOverrideMode;
    if (name === 'smc-x12') {
      // Supermicro drops to Legacy when a PATCH omits the mode: metalbox always sends the current one.
      assert.ok(
        patches.every((b) => b.BootSourceOverrideMode === original),
        JSON.stringify(patches),
      );
    } else {
      assert.ok(
        patches.every((b) => b.BootSourceOverrideMode === undefined),
        `${name}: ${JSON.stringify(patches)}`,
      );
      assert.equal(mode, original, `${name}: boot mode changed`);
    }
  }
  assert.equal(idrac.biosJobs.size, 0, 'no BIOS job on the iDRAC');

  const hpe = await world.events('hpe-dl180');
  const detected = hpe.find((e) => e.reason === 'VendorDetected');
  assert.match(detected?.message ?? '', /ilo5-redfish\+http:\/\//);
  assert.equal(detected?.type, 'Warning');

  const lenovo = await world.host('lenovo-sr650');
  assert.deepEqual(
    lenovo.status?.hardware?.nics?.map((n) => n.mac),
    ['7c:d3:0a:44:55:66'],
  );
  const incomplete = (await world.events('lenovo-sr650')).find((e) => e.reason === 'InventoryIncomplete');
  assert.match(incomplete?.message ?? '', /Drives\/Disk\.0: HTTP 404/);

  // The Supermicro serves no sessions: the Basic fallback is said once, in an Event and a condition.
  const smcEvents = (await world.events('smc-x12')).filter((e) => e.reason === 'BasicAuthFallback');
  assert.equal(smcEvents.length, 1);
  const auth = condition(await world.host('smc-x12'), 'BMCAuthentication');
  assert.equal(auth?.reason, 'BasicAuthFallback');
  assert.match(auth?.message ?? '', /every request carries the password/);
  for (const other of ['dell-r6515', 'hpe-dl180', 'lenovo-sr650']) {
    assert.ok(!(await world.events(other)).some((e) => e.reason === 'BasicAuthFallback'), other);
  }

  // Supermicro offers no graceful reset: a soft reboot annotation is refused and says how to force it;
  // spec.online=false under enforce is forced, with a Warning Event saying so.
  const smcSystem = smc.systems[0]!;
  await world.patchHost('smc-x12', (h) => {
    h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.reboot]: '{"mode":"soft"}' };
  });
  await world.waitForHost(
    'smc-x12',
    (h) => h.metadata.annotations?.[BMH_ANNOTATIONS.reboot] === undefined,
    'reboot annotation removed',
  );
  const rejected = (await world.events('smc-x12')).find((e) => e.reason === 'RebootRejected');
  assert.match(rejected?.message ?? '', /graceful restart.*ask for \{"mode":"hard"\}/);
  assert.equal(smc.resource(smcSystem)?.PowerState, 'On');
  await world.patchHost('smc-x12', (h) => {
    h.spec.online = false;
  });
  await world.waitForHost('smc-x12', (h) => h.status?.poweredOn === false, 'powered off', 60_000);
  assert.equal(smc.resource(smcSystem)?.PowerState, 'Off');
  const forced = (await world.events('smc-x12')).find((e) => e.reason === 'GracefulUnavailable');
  assert.equal(forced?.type, 'Warning');
  assert.match(forced?.message ?? '', /offers no graceful power off .*forced power off as allowed/);
});

test('a BMC that keeps Once as Continuous: the host is provisioned and the read-back is recorded', async () => {
  const m = await tree('dmtf-rackmount1', { onceReadsBackAs: 'Continuous' });
  const system = mockupHostSystem(m);
  await world.addHost('rack-continuous', system, { username: m.username, password: m.password });
  const host = await world.waitForState('rack-continuous', 'provisioned', 180_000);
  const override = condition(host, 'BootOverride');
  assert.equal(override?.status, 'False');
  assert.equal(override?.reason, 'Persistent');
  assert.match(override?.message ?? '', /reads back Continuous Pxe/);
  const events = await world.events('rack-continuous');
  assert.equal(events.filter((e) => e.reason === 'BootOverridePersistent').length, 1);
});
