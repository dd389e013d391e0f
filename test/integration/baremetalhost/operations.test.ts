// Day-2 operations on provisioned hosts, on a real kube-apiserver, the Matchbox pair and
// sushy-tools: rescue round trip, the reboot annotation, paused, detached, powerPolicy observe vs
// enforce. Five hosts are provisioned together first; each test then works on its own host.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BMH_ANNOTATIONS } from '../../../src/crds/baremetalhost.ts';
import { waitFor } from '../../env/wait.ts';
import { World } from './world.ts';

let world: World;
const HOSTS = ['rescue-1', 'reboot-1', 'paused-1', 'detached-1', 'observe-1'] as const;
before(async () => {
  world = await World.start({ backend: 'kube', systems: HOSTS.length });
  await world.startController();
  await Promise.all(HOSTS.map((name, i) => world.addHost(name, world.systems[i]!)));
  await Promise.all(HOSTS.map((name) => world.waitForState(name, 'provisioned', 180_000)));
  await Promise.all(
    HOSTS.map((name) =>
      waitFor(async () => world.machine(name).phase === 'running-disk', {
        what: `${name} running from disk`,
        timeoutMs: 30_000,
      }),
    ),
  );
});
after(async () => {
  await world?.close();
});

const system = (name: (typeof HOSTS)[number]) => world.systems[HOSTS.indexOf(name)]!;
const reasons = async (name: string) => (await world.events(name)).map((e) => e.reason);

test('rescue round trip: bootTarget rescue boots rescueProfileRef once from PXE; back to disk restores the disk answer and reboots into the installed OS', async () => {
  const name = 'rescue-1';
  const machine = world.machine(name);
  const bootsBefore = machine.boots.length;
  await world.patchHost(name, (h) => {
    h.spec.bootTarget = 'rescue';
    h.spec.rescueProfileRef = { name: 'rescue' };
  });
  const inRescue = await world.waitForHost(
    name,
    (h) => h.status?.provisioning?.state === 'rescue' && h.status.provisioning.bootTarget === 'rescue',
    'booted into rescue',
  );
  assert.equal(inRescue.status?.provisioning?.profile, 'rescue');
  await waitFor(async () => machine.phase === 'running-netboot', {
    what: 'machine runs the rescue kernel',
    timeoutMs: 60_000,
  });
  const rescueBoot = machine.boots.at(-1)!;
  assert.equal(rescueBoot.via, 'pxe-once');
  assert.equal(rescueBoot.kernel, '/assets/rescue-vmlinuz');
  assert.deepEqual(await world.bootAnswers(system(name).mac), [
    '/assets/rescue-vmlinuz',
    '/assets/rescue-vmlinuz',
  ]);
  assert.equal((await world.group(`${name}-boot`)).spec.profileRef.name, 'rescue');

  await world.patchHost(name, (h) => {
    h.spec.bootTarget = 'disk';
  });
  await world.waitForState(name, 'provisioned');
  await waitFor(async () => machine.phase === 'running-disk', {
    what: 'machine back on its disk',
    timeoutMs: 60_000,
  });
  await waitFor(async () => (await world.bootAnswers(system(name).mac)).every((a) => a === 'exit'), {
    what: 'disk answer restored on both Matchbox servers',
    timeoutMs: 30_000,
  });
  assert.equal(machine.installs, 1, 'rescue never reinstalled the host');
  assert.ok(machine.boots.length >= bootsBefore + 2, 'booted into rescue, then back to disk');
  const r = await reasons(name);
  assert.ok(r.includes('NetworkBoot') && r.includes('DiskBoot'), r.join(','));
});

test('the reboot annotation power-cycles the host once and is removed when done', async () => {
  const name = 'reboot-1';
  const machine = world.machine(name);
  const boots = machine.boots.length;
  const resets = world.resetCount(system(name));
  await world.patchHost(name, (h) => {
    h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.reboot]: '{"mode":"hard"}' };
  });
  await world.waitForHost(
    name,
    (h) => h.metadata.annotations?.[BMH_ANNOTATIONS.reboot] === undefined,
    'annotation removed',
  );
  await waitFor(async () => machine.boots.length > boots && machine.phase === 'running-disk', {
    what: 'machine rebooted into its disk',
    timeoutMs: 60_000,
  });
  assert.equal(world.resetCount(system(name)), resets + 1, 'one Reset request');
  assert.equal(machine.installs, 1);
  assert.ok((await reasons(name)).includes('Reboot'));
});

test('a paused host is left alone: no power enforcement and no status change until the annotation goes', async () => {
  const name = 'paused-1';
  await world.patchHost(name, (h) => {
    h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.paused]: 'true' };
  });
  await sleep(1000);
  const before = await world.host(name);
  await world.patchHost(name, (h) => {
    h.spec.online = false;
  });
  await sleep(6000);
  assert.equal((await world.systemState(system(name))).power, 'On', 'not powered off while paused');
  const during = await world.host(name);
  assert.deepEqual(during.status, before.status, 'status untouched while paused');
  await world.patchHost(name, (h) => {
    delete h.metadata.annotations?.[BMH_ANNOTATIONS.paused];
  });
  await waitFor(async () => (await world.systemState(system(name))).power === 'Off', {
    what: 'powered off once unpaused',
    timeoutMs: 60_000,
  });
  await world.waitForHost(name, (h) => h.status?.poweredOn === false, 'status shows powered off');
});

test('a detached host gets no BMC action and says detached; removing the annotation resumes power enforcement', async () => {
  const name = 'detached-1';
  await world.patchHost(name, (h) => {
    h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.detached]: 'true' };
  });
  await world.waitForHost(
    name,
    (h) => h.status?.operationalStatus === 'detached',
    'operationalStatus detached',
  );
  const resets = world.resetCount(system(name));
  await world.patchHost(name, (h) => {
    h.spec.online = false;
  });
  await sleep(6000);
  assert.equal(world.resetCount(system(name)), resets, 'no power action while detached');
  assert.equal((await world.systemState(system(name))).power, 'On');
  assert.equal((await world.host(name)).status?.provisioning?.state, 'provisioned');
  await world.patchHost(name, (h) => {
    delete h.metadata.annotations?.[BMH_ANNOTATIONS.detached];
  });
  await waitFor(async () => (await world.systemState(system(name))).power === 'Off', {
    what: 'powered off once attached again',
    timeoutMs: 60_000,
  });
  await world.waitForHost(name, (h) => h.status?.operationalStatus === 'OK', 'operationalStatus OK');
});

test('powerPolicy observe reports drift in PowerInSync and never acts; enforce powers the host back on', async () => {
  const name = 'observe-1';
  await world.patchHost(name, (h) => {
    h.spec.powerPolicy = 'observe';
  });
  await sleep(1000);
  const resets = world.resetCount(system(name));
  await world.resetSystem(system(name), 'ForceOff');
  const drifted = await world.waitForHost(
    name,
    (h) =>
      h.status?.conditions?.some(
        (c) => c.type === 'PowerInSync' && c.status === 'False' && c.reason === 'Drift',
      ) ?? false,
    'PowerInSync=False reason Drift',
    60_000,
  );
  assert.match(drifted.status!.conditions!.find((c) => c.type === 'PowerInSync')!.message, /observe/);
  await sleep(5000);
  assert.equal(world.resetCount(system(name)), resets + 1, 'only our own ForceOff: metalbox did not act');
  assert.equal((await world.systemState(system(name))).power, 'Off');
  assert.ok((await reasons(name)).includes('PowerDrift'));

  await world.patchHost(name, (h) => {
    h.spec.powerPolicy = 'enforce';
  });
  await waitFor(async () => (await world.systemState(system(name))).power === 'On', {
    what: 'enforce powers it back on',
    timeoutMs: 60_000,
  });
  await world.waitForHost(
    name,
    (h) => h.status?.conditions?.some((c) => c.type === 'PowerInSync' && c.status === 'True') ?? false,
    'PowerInSync=True',
    60_000,
  );
  assert.equal(world.machine(name).installs, 1, 'powering on boots the disk, never reinstalls');
});
