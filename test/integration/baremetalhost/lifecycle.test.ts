// The whole lifecycle on a real kube-apiserver, two real Matchbox servers, sushy-tools (Redfish)
// and ipmi_sim (IPMI): registering → inspecting → available → provisioning → provisioned, with the
// BMC asked for a one-time PXE boot and a power change, and Matchbox answering install, then disk.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Host, World } from './world.ts';

let world: World;
before(async () => {
  world = await World.start({ backend: 'kube', systems: 1, ipmi: true });
  await world.startController();
});
after(async () => {
  await world?.close();
});

const transitions = async (name: string) =>
  (await world.events(name)).filter((e) => e.message.includes(' → ')).map((e) => e.message.split(':')[0]);

/** Polls Matchbox while `name` provisions and returns every distinct answer seen, in order. */
async function watchAnswers(name: string, mac: string, until: (h: Host) => boolean): Promise<string[]> {
  const seen: string[] = [];
  for (;;) {
    const answers = await world.bootAnswers(mac);
    for (const a of answers) if (seen.at(-1) !== a) seen.push(a);
    // Done once the host is there and both servers serve the disk answer (the sync takes a moment).
    if (until(await world.host(name)) && answers.every((a) => a === 'exit')) return seen;
    await sleep(100);
  }
}

test('a Redfish host is registered, inspected and provisioned; sushy-tools got boot-once PXE and a power-on; Matchbox answers install, then disk', async () => {
  const system = world.systems[0]!;
  await world.addHost('rf-01', system);
  const answers = await watchAnswers(
    'rf-01',
    system.mac,
    (h) => h.status?.provisioning?.state === 'provisioned',
  );
  const host = await world.waitForState('rf-01', 'provisioned');

  assert.deepEqual(await transitions('rf-01'), [
    'new → registering',
    'registering → inspecting',
    'inspecting → available',
    'available → provisioning',
    'provisioning → provisioned',
  ]);
  const history = host.status?.operationHistory;
  for (const op of ['register', 'inspect', 'provision'] as const) {
    assert.ok(history?.[op]?.start && history[op]?.end, `operationHistory.${op} has start and end`);
  }
  assert.ok(
    host.status?.hardware?.nics?.some((n) => n.mac === system.mac),
    'inventory lists the boot NIC',
  );
  assert.equal(host.status?.provisioning?.attempt, 1);
  assert.equal(host.status?.provisioning?.bootTarget, 'disk');
  assert.equal(host.status?.operationalStatus, 'OK');
  assert.equal(host.status?.poweredOn, true);

  // Matchbox: no answer before, the install answer while provisioning, then the disk answer.
  assert.equal(answers[0], 'none', `answers seen: ${answers.join(' → ')}`);
  assert.ok(answers.includes('install'), `answers seen: ${answers.join(' → ')}`);
  assert.equal(answers.at(-1), 'exit');

  // The emulator was asked for the boot override (PATCH Boot) and then to power on (Reset);
  // the machine saw a one-time PXE override when it powered on (below).
  const log = world.sushyLog();
  const patch = log.findIndex((l) => /PATCH \/redfish\/v1\/Systems\/\S+ HTTP/.test(l));
  const reset = log.findIndex((l) =>
    /POST \/redfish\/v1\/Systems\/\S+\/Actions\/ComputerSystem\.Reset/.test(l),
  );
  assert.ok(patch >= 0 && reset > patch, 'sushy-tools received PATCH Boot, then ComputerSystem.Reset');
  assert.equal(log.filter((l) => l.includes('ComputerSystem.Reset')).length, 1, 'exactly one power action');

  // The SIMULATED machine network-booted once into the installer, then booted its disk.
  const machine = world.machine('rf-01');
  assert.equal(machine.installs, 1);
  assert.equal(machine.boots[0]?.via, 'pxe-once');
  assert.equal(machine.boots[0]?.answer, 'install');
  assert.ok(machine.boots[0]?.args?.includes('metalbox.attempt=1'));
  assert.equal(machine.phase, 'running-disk');
});

test('an IPMI host is provisioned the same way: ipmi_sim got bootdev pxe and power on', async () => {
  const system = world.ipmiSystem!;
  await world.addHost('ipmi-01', system);
  const answers = await watchAnswers(
    'ipmi-01',
    system.mac,
    (h) => h.status?.provisioning?.state === 'provisioned',
  );
  const host = await world.waitForState('ipmi-01', 'provisioned');
  assert.equal(host.status?.provisioning?.attempt, 1);
  assert.ok(answers.includes('install'), `answers seen: ${answers.join(' → ')}`);
  assert.equal(answers.at(-1), 'exit');
  const calls = world.ipmi!.calls();
  assert.ok(calls.includes('set boot pxe'), `chassis calls: ${calls.join(', ')}`);
  assert.ok(calls.includes('set power 1'), `chassis calls: ${calls.join(', ')}`);
  assert.ok(
    calls.indexOf('set boot pxe') < calls.lastIndexOf('set power 1'),
    'boot device set before powering on',
  );
  const machine = world.machine('ipmi-01');
  assert.equal(machine.installs, 1);
  assert.equal(machine.phase, 'running-disk');
});

test('metrics: hosts per state, transitions, operation durations', async () => {
  const text = (await world.registry.metrics())
    .split('\n')
    .filter((l) => l.startsWith('metalbox_host'))
    .join('\n');
  assert.match(text, /metalbox_hosts\{state="provisioned"\} 2/);
  assert.match(text, /metalbox_host_state_transitions_total\{from="provisioning",to="provisioned"\} 2/);
  assert.match(text, /metalbox_host_state_transitions_total\{from="none",to="registering"\} 2/);
  for (const op of ['register', 'inspect', 'provision']) {
    assert.match(text, new RegExp(`metalbox_host_operation_duration_seconds_count\\{operation="${op}"\\} 2`));
  }
  assert.match(text, /metalbox_host_power_actions_total\{action="pxe-once"\} 2/);
});
