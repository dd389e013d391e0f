// The seed fleet on real machines: VMs with real firmware (OVMF for cp-01 and cp-02, SeaBIOS for
// worker-01) PXE-boot through the seed's DHCP arrangement (a DHCP server plus proxy-DHCP/TFTP on
// mgmt-01) to the Matchbox pair behind keepalived's VIP, under real BMC emulators (sushy-tools'
// libvirt driver for Redfish, virtualbmc for IPMI), driven by metalbox's controllers. The OS is
// the lab agent, a SIMULATED Talos that fetches its one-time config, publishes Talos's events and
// installs a bootable disk. The tests run in order on one lab (a VM boot costs tens of seconds).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { INSTALL_CONDITIONS } from '../../src/controllers/baremetalhost/hooks.ts';
import type { MatchboxProfile } from '../../src/crds/matchboxprofile.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { waitFor } from '../env/wait.ts';
import { PROFILE_KIND_REF } from '../integration/baremetalhost/world.ts';
import { plainText } from './libvirt.ts';
import { CONSOLE, LabWorld, NAMESPACE } from './world.ts';

let world: LabWorld;
const started = Date.now();
const took = (from: number) => `${Math.round((Date.now() - from) / 1000)} s`;
const note = (s: string) => process.stdout.write(`# lab [${took(started)}] ${s}\n`);

before(async () => {
  world = await LabWorld.start();
  note(`lab up: segment ${world.lab.net.prefix}.0/24, VIP on ${world.lab.matchbox.vipHolder()?.name}`);
  await world.addHost({ name: 'cp-01', firmware: 'uefi', bmc: 'redfish' });
  await world.addHost({ name: 'cp-02', firmware: 'uefi', bmc: 'ipmi' });
  await world.addHost({ name: 'worker-01', firmware: 'bios', bmc: 'redfish' });
});
after(async () => {
  await world?.close();
  // A VM powered off mid-connection leaves the event sink's socket to it in FIN_WAIT1 (its GOAWAY
  // is never acknowledged), which would keep this process alive for minutes after the lab is gone.
  // Every test here is registered up front and has ended by now: leave once the results are out.
  setTimeout(() => process.exit(), 3000).unref();
});

const count = (text: string, pattern: RegExp) =>
  plainText(text)
    .split('\n')
    .filter((l) => pattern.test(l)).length;

test('the seed fleet installs through the seed DHCP arrangement, each VM once, surviving the VIP holder’s Matchbox dying', async () => {
  const t0 = Date.now();
  await world.startController();
  const names = ['cp-01', 'cp-02', 'worker-01'];
  // Every host asked its BMC for the network boot: all answers are on both Matchbox servers.
  for (const name of names) {
    await world.waitForHost(
      name,
      (h) => h.status?.conditions?.some((c) => c.type === 'BootRequested' && c.status === 'True') === true,
      'the install boot requested',
      300_000,
    );
  }
  note(`all three install boots requested after ${took(t0)}`);
  // HA: the VIP holder's Matchbox dies while the VMs are booting; keepalived moves the VIP.
  const holder = world.lab.matchbox.vipHolder();
  assert.ok(holder, 'one Matchbox holds the VIP');
  await holder.kill();
  const other = world.lab.matchbox.nodes.find((n) => n !== holder)!;
  await waitFor(async () => other.holdsVip(), {
    what: `the VIP to move to ${other.name}`,
    timeoutMs: 30_000,
  });
  note(`killed Matchbox on ${holder.name}; VIP on ${other.name}`);

  for (const name of names) {
    const host = await world.waitForState(name, 'provisioned', 900_000);
    note(`${name} provisioned after ${took(t0)}`);
    assert.equal(host.status?.provisioning?.attempt, 1, `${name} installed by its first attempt`);
    if (name === 'cp-01') {
      // The dead Matchbox comes back; metalbox's sync brings it up to date.
      await holder.start();
    }
  }
  for (const name of names) {
    const lab = world.labHost(name);
    await lab.vm.waitConsole(CONSOLE.diskBoot, { timeoutMs: 600_000, what: 'booted from its disk' });
    const host = await world.waitForHost(
      name,
      (h) =>
        h.status?.conditions?.some(
          (c) => c.type === INSTALL_CONDITIONS.bootedFromDisk && c.status === 'True',
        ) === true,
      'BootedFromDisk from the event sink',
      300_000,
    );
    note(`${name} booted from disk after ${took(t0)}`);
    const console = lab.vm.console();
    assert.equal(count(console, CONSOLE.configFetched), 1, `${name} fetched its config once`);
    assert.equal(count(console, CONSOLE.installDone), 1, `${name} installed once`);
    // The config came from the VM's own DHCP address, and that is who reported the install.
    const lease = world.lab.dhcp.leaseOf(lab.mac);
    assert.ok(lease, `${name} has a lease from the DHCP server`);
    assert.equal(host.status?.talos?.configFetchedFrom, lease);
  }
  // The seed's arrangement really ran: UEFI firmware got iPXE by proxy-DHCP + TFTP from mgmt-01,
  // every iPXE was sent to Matchbox on the VIP.
  const proxy = world.lab.dhcp.proxyLog();
  assert.match(proxy, /sent \S+\/ipxe\.efi to/);
  assert.match(proxy, /boot\.ipxe/);
  assert.equal(world.kernelDownloads(), 3, 'one install kernel per VM, from either Matchbox');
  // What the BMC emulators did with the install's one-time PXE override, as metalbox read it back:
  // sushy-tools' libvirt driver keeps it for every boot (Continuous), and metalbox says so.
  for (const name of names) {
    const events = await world.events(name);
    const said = events.filter((e) => e.reason === 'BootOverridePersistent').map((e) => e.message);
    note(`${name} (${world.labHost(name).bmc}) Once read back: ${said[0] ?? 'as requested'}`);
    if (world.labHost(name).bmc === 'redfish')
      assert.ok(said.length > 0, `${name}: sushy keeps Once as Continuous`);
  }
  for (const name of ['cp-01', 'cp-02']) {
    const device = (await world.host(name)).status?.conditions?.find((c) => c.type === 'BootDevice');
    note(`${name} BootDevice: ${device?.reason}: ${device?.message}`);
    assert.equal(device?.status, 'True', `${name}: the BMC boots the disk (bootFromDiskMethod bmc)`);
  }
});

test('install-loop: a provisioned VM power-cycled boots its disk, on OVMF and on SeaBIOS, and never reinstalls', async () => {
  const kernels = world.kernelDownloads();
  for (const name of ['cp-01', 'worker-01']) {
    const lab = world.labHost(name);
    const from = lab.vm.console().length;
    const t0 = Date.now();
    const auth = `Basic ${Buffer.from(`${world.lab.redfish.username}:${world.lab.redfish.password}`).toString('base64')}`;
    const res = await fetch(
      `${world.lab.redfish.url}/redfish/v1/Systems/${lab.vm.uuid}/Actions/ComputerSystem.Reset`,
      {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ ResetType: 'ForceRestart' }),
      },
    );
    assert.ok(res.ok, `power cycle ${name}: HTTP ${res.status}`);
    await lab.vm.waitConsole(CONSOLE.diskBoot, { from, timeoutMs: 300_000, what: 'booted its disk again' });
    note(`${name} (${lab.firmware}) power-cycled: disk booted after ${took(t0)}`);
    assert.equal(count(lab.vm.console().slice(from), CONSOLE.configFetched), 0, `${name} did not reinstall`);
  }
  assert.equal(world.kernelDownloads(), kernels, 'no install kernel was fetched again');
  for (const name of ['cp-01', 'worker-01']) {
    assert.equal((await world.host(name)).status?.provisioning?.state, 'provisioned');
  }
});

test('rescue round trip: bootTarget rescue boots the rescue system; back to disk boots the installed disk', async () => {
  const lab = world.labHost('worker-01');
  let from = lab.vm.console().length;
  await world.patchHost('worker-01', (h) => {
    h.spec.rescueProfileRef = { name: 'rescue' };
    h.spec.bootTarget = 'rescue';
  });
  await lab.vm.waitConsole(CONSOLE.rescue, { from, timeoutMs: 300_000, what: 'the rescue system' });
  await world.waitForState('worker-01', 'rescue', 60_000);
  note('worker-01 booted the rescue system');
  from = lab.vm.console().length;
  await world.patchHost('worker-01', (h) => {
    h.spec.bootTarget = 'disk';
  });
  await lab.vm.waitConsole(CONSOLE.diskBoot, { from, timeoutMs: 300_000, what: 'the installed disk again' });
  await world.waitForState('worker-01', 'provisioned', 60_000);
  note('worker-01 back on its disk');
});

test('deprovision cleans the disk: one wipe boot reported by the machine, power off, answers removed; a later power-on neither reinstalls nor boots the old OS', async () => {
  const lab = world.labHost('worker-01');
  const from = lab.vm.console().length;
  const kernels = world.kernelDownloads();
  const t0 = Date.now();
  await world.patchHost('worker-01', (h) => {
    delete h.spec.profileRef;
  });
  await lab.vm.waitConsole(CONSOLE.wipeDone, { from, timeoutMs: 300_000, what: 'the wipe boot' });
  const host = await world.waitForState('worker-01', 'available', 300_000);
  note(`worker-01 wiped and available after ${took(t0)}`);
  const provisioned = host.status?.conditions?.find((c) => c.type === 'Provisioned');
  assert.equal(provisioned?.reason, 'Deprovisioned');
  assert.match(provisioned?.message ?? '', /^disk wiped, powered off and Matchbox answers removed/);
  const reasons = (await world.events('worker-01')).map((e) => e.reason);
  assert.ok(reasons.includes('Cleaning') && reasons.includes('Cleaned'), reasons.join(','));
  assert.equal(world.kernelDownloads(), kernels + 1, 'one boot of the install image, for the wipe');
  await waitFor(async () => lab.vm.state() === 'shut off', {
    what: 'worker-01 powered off',
    timeoutMs: 120_000,
  });
  // The wipe boot fetched only where to report: nothing of the machine config was served.
  assert.ok(
    !plainText(lab.vm.console().slice(from)).includes('config accepted'),
    'no install config in the wipe boot',
  );

  // A person powers it on later: no answer from Matchbox, nothing bootable on the disk.
  const later = lab.vm.console().length;
  world.lab.libvirt.virsh(['start', lab.vm.domain]);
  await lab.vm.waitConsole(/No bootable device|Boot failed/, {
    from: later,
    timeoutMs: 180_000,
    what: 'nothing to boot',
  });
  const after = plainText(lab.vm.console().slice(later));
  assert.ok(!CONSOLE.diskBoot.test(after), 'the old OS did not boot');
  assert.ok(!CONSOLE.configFetched.test(after), 'nothing was installed again');
  assert.equal(world.kernelDownloads(), kernels + 1, 'no install kernel fetched');
  world.lab.libvirt.virsh(['destroy', lab.vm.domain]);
});

test('a config fetch answered 404 (the URL was used already) ends the attempt with a clear condition, and the next attempt installs', async () => {
  const t0 = Date.now();
  await world.addHost({ name: 'worker-02', firmware: 'bios', bmc: 'redfish' });
  // Someone else fetches the one-time URL first (from the management address), before the VM does.
  const url = await waitFor(
    async () => {
      const profile = await world.store
        .get<MatchboxProfile & Resource>(PROFILE_KIND_REF, {
          namespace: NAMESPACE,
          name: 'worker-02-install',
        })
        .catch(() => undefined);
      return profile?.spec.args?.find((a) => a.startsWith('talos.config='))?.slice('talos.config='.length);
    },
    { what: 'worker-02 install profile with its config URL', timeoutMs: 120_000 },
  );
  const stolen = await fetch(url);
  assert.equal(stolen.status, 200);
  const failed = await world.waitForHost(
    'worker-02',
    (h) => h.status?.errorType === 'provisioning error',
    'the attempt ended',
    600_000,
  );
  assert.match(
    failed.status?.errorMessage ?? '',
    /install attempt 1 failed: the config was refused to \S+ because its one-time URL had already been used/,
  );
  note(`worker-02 attempt 1 ended after ${took(t0)}: ${failed.status?.errorMessage}`);
  assert.ok(count(world.labHost('worker-02').vm.console(), /config fetch .*404|refused|maintenance/) > 0);
  const host = await world.waitForState('worker-02', 'provisioned', 900_000);
  assert.equal(host.status?.provisioning?.attempt, 2);
  note(`worker-02 provisioned by attempt 2 after ${took(t0)}`);
});
