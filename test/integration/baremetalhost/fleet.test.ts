// Fleet behaviour on a real kube-apiserver, the Matchbox pair and sushy-tools: identity conflicts
// stop both hosts, and the global provisioning limit (Metal3's default 20) holds with 25 hosts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST_KIND } from '../../../src/controllers/baremetalhost/kinds.ts';
import { holdsSlot } from '../../../src/controllers/baremetalhost/slots.ts';
import { isNotFound } from '../../../src/runtime/errors.ts';
import { waitFor } from '../../env/wait.ts';
import { type Host, NAMESPACE, World } from './world.ts';

const FLEET = 25;
let world: World;
before(async () => {
  world = await World.start({ backend: 'kube', systems: FLEET + 2 });
  await world.startController();
});
after(async () => {
  await world?.close();
});

const conflict = (h: Host) => h.status?.conditions?.find((c) => c.type === 'Conflict');

test('two hosts with the same boot MAC both get Conflict=True and neither is provisioned; removing one lets the other go on', async () => {
  const a = world.systems[FLEET]!;
  const b = world.systems[FLEET + 1]!;
  await world.addHost('dup-a', a);
  // dup-b is another machine whose manifest was copied with dup-a's MAC by mistake.
  await world.addHost('dup-b', b, { spec: { bootMACAddress: a.mac }, machine: false });
  for (const name of ['dup-a', 'dup-b']) {
    const host = await world.waitForHost(
      name,
      (h) => conflict(h)?.status === 'True',
      'Conflict=True',
      30_000,
    );
    assert.equal(conflict(host)?.reason, 'DuplicateBootMACAddress');
    assert.match(conflict(host)?.message ?? '', new RegExp(name === 'dup-a' ? 'dup-b' : 'dup-a'));
  }
  await sleep(3000);
  for (const name of ['dup-a', 'dup-b']) {
    const host = await world.host(name);
    assert.equal(host.status?.provisioning?.state, 'registering', `${name} did not move on`);
    await assert.rejects(world.group(`${name}-boot`), (e) => isNotFound(e), `${name} has no Matchbox group`);
  }
  assert.equal(world.resetCount(a), 0, 'no power action on either machine');
  assert.equal(world.resetCount(b), 0);
  assert.ok((await world.events('dup-a')).some((e) => e.reason === 'Conflict' && e.type === 'Warning'));

  await world.store.delete(HOST_KIND, { namespace: NAMESPACE, name: 'dup-b' });
  const host = await world.waitForState('dup-a', 'provisioned', 120_000);
  assert.equal(conflict(host)?.status, 'False');
  assert.equal(world.machine('dup-a').installs, 1);
});

test(`the provisioning limit: with ${FLEET} hosts at once, at most 20 install at a time, the rest wait as delayed, all end provisioned`, async () => {
  world.machineSettings = { pollMs: 1000, installMs: 8000 };
  const names = Array.from({ length: FLEET }, (_, i) => `fleet-${String(i).padStart(2, '0')}`);
  await Promise.all(names.map((name, i) => world.addHost(name, world.systems[i]!)));
  let maxInstalling = 0;
  const delayed = new Set<string>();
  await waitFor(
    async () => {
      const hosts = (await world.store.list<Host>(HOST_KIND, { namespace: NAMESPACE })).items.filter((h) =>
        h.metadata.name.startsWith('fleet-'),
      );
      maxInstalling = Math.max(maxInstalling, hosts.filter((h) => holdsSlot(h)).length);
      for (const h of hosts) if (h.status?.operationalStatus === 'delayed') delayed.add(h.metadata.name);
      return hosts.length === FLEET && hosts.every((h) => h.status?.provisioning?.state === 'provisioned');
    },
    { what: `all ${FLEET} hosts provisioned`, timeoutMs: 300_000, intervalMs: 250 },
  );
  assert.ok(maxInstalling <= 20, `at most 20 hosts held a provisioning slot (saw ${maxInstalling})`);
  assert.ok(maxInstalling >= 15, `the limit was what bound (saw ${maxInstalling} at once)`);
  assert.ok(delayed.size >= 1, 'some hosts waited with operationalStatus delayed');
  const waited = [...delayed][0]!;
  assert.ok(
    (await world.events(waited)).some((e) => e.reason === 'Delayed'),
    `${waited} has a Delayed event`,
  );
  for (const name of names) assert.equal(world.machine(name).installs, 1, `${name} installed once`);
  const metrics = await world.registry.getSingleMetricAsString('metalbox_host_delayed_total');
  assert.match(metrics, /metalbox_host_delayed_total [1-9]/);
});
