// End to end on a real kube-apiserver, the real Matchbox pair and sushy-tools (the BareMetalHost
// lifecycle world), with every controller family including Talos: the host's TalosMachineConfig
// renders its config, the host controller puts the one-time URL into the install profile, the
// SIMULATED machine PXE-boots through Matchbox, fetches its config with the token and publishes the
// real Talos event sequence over gRPC; the host becomes `provisioned` only after the install events.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { childNames } from '../../../src/controllers/baremetalhost/children.ts';
import { INSTALL_CONDITIONS } from '../../../src/controllers/baremetalhost/hooks.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import { SimulatedMachine } from '../../../src/sim/machine.ts';
import { talosEventReporter } from '../../../src/sim/talos-events.ts';
import { SECRET_KIND, TALOS_CONFIG_KIND } from '../../../src/talos/kinds.ts';
import { FAKE_SECRETS } from '../../fixtures/talos/fake-secrets.ts';
import { seedHosts, seedTalosConfig } from '../../fixtures/talos/seed.ts';
import { baseSecret } from '../../fixtures/talos/store.ts';
import { World } from '../baremetalhost/world.ts';

let world: World;
before(async () => {
  world = await World.start({ backend: 'kube', systems: 1 });
  const base = world.config.bind(world);
  world.config = () => ({
    ...base(),
    talos: {
      configServer: { listen: '127.0.0.1:0' },
      eventSink: { listen: '127.0.0.1:0' },
      tokenTTLSeconds: 600,
    },
  });
  await world.store.create(SECRET_KIND, baseSecret('v1.12'));
  await world.store.create(TALOS_CONFIG_KIND, seedTalosConfig('v1.12') as Resource);
  await world.startController();
});
after(async () => {
  await world?.close();
});

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await world.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + Number(v.value), 0);
}

test('a Talos host provisions through the one-time config URL and the event sink; provisioned only after the install events', async () => {
  const system = world.systems[0]!;
  const seed = seedHosts().find((h) => h.metadata.name === 'cp-01')!;
  await world.addHost('cp-01', system, {
    machine: false,
    spec: { talosConfigRef: { name: 'mycluster' }, network: seed.spec.network! },
  });
  // The simulated machine reports as Talos does: over gRPC to the sink, from the address it
  // fetched its config from (loopback here: global fetch uses the default source address).
  const reporter = talosEventReporter({
    sink: await sinkAddress(),
    localAddress: '127.0.0.1',
    hostname: 'talos-cp-01',
  });
  const machine = new SimulatedMachine({
    name: 'cp-01',
    mac: system.mac,
    uuid: system.uuid,
    bmc: system.view(),
    matchboxUrls: [world.pair.a.httpURL, world.pair.b.httpURL],
    reporter,
    pollMs: 300,
    installMs: 500,
    logger: world.logs,
  });
  world.machines.set('cp-01', machine);
  machine.start();

  const host = await world.waitForState('cp-01', 'provisioned', 180_000);
  const condition = (type: string) => host.status?.conditions?.find((c) => c.type === type);
  assert.equal(condition(INSTALL_CONDITIONS.configDelivered)?.status, 'True');
  assert.equal(condition(INSTALL_CONDITIONS.installed)?.status, 'True');
  assert.equal(
    condition(INSTALL_CONDITIONS.installed)?.reason,
    'InstallSequenceFinished',
    'set by the event sink',
  );
  assert.equal(host.status?.talos?.configFetchedFrom, '127.0.0.1');
  assert.match(host.status?.talos?.configHash ?? '', /^[0-9a-f]{64}$/);

  // The install profile carried the one-time URL (replacing the profile's static talos.config).
  const profile = await world.profile(childNames(host).install);
  const args = profile.spec.args ?? [];
  assert.equal(args.filter((a) => a.startsWith('talos.config=')).length, 1);
  assert.match(
    args.find((a) => a.startsWith('talos.config='))!,
    /\/v1\/config\/metalbox-system\.cp-01\?t=[A-Za-z0-9_-]{43}$/,
  );
  assert.ok(args.some((a) => a.startsWith('talos.events.sink=127.0.0.1:')));

  // Exactly one config fetch served, one install.
  assert.equal(await counter('metalbox_talos_config_requests_total', { result: 'served' }), 1);
  assert.equal(machine.installs, 1);

  // Order: config delivered → installing → installed (events) → provisioned (host controller).
  const events = await world.events('cp-01');
  const at = (reason: string) => events.findIndex((e) => e.reason === reason);
  const provisionedAt = events.findIndex((e) => e.message.startsWith('provisioning → provisioned'));
  assert.ok(
    at('ConfigDelivered') >= 0 && at('Installing') > at('ConfigDelivered'),
    events.map((e) => e.reason).join(','),
  );
  assert.ok(at('Installed') > at('Installing'));
  assert.ok(provisionedAt > at('Installed'), 'provisioned only after the Installed event');

  // Then the disk boot: BootedFromDisk and Ready from the event stream.
  const booted = await world.waitForHost(
    'cp-01',
    (h) =>
      h.status?.conditions?.some((c) => c.type === INSTALL_CONDITIONS.ready && c.status === 'True') === true,
    'Ready from the event sink',
  );
  assert.equal(
    booted.status?.conditions?.find((c) => c.type === INSTALL_CONDITIONS.bootedFromDisk)?.status,
    'True',
  );
  assert.equal(booted.status?.lastObservedBoot?.phase, 'booted');
  assert.equal(
    await counter('metalbox_talos_config_requests_total', { result: 'served' }),
    1,
    'still one fetch',
  );
  assert.equal(booted.status?.talos?.tokenHash, undefined, 'the token was revoked when provisioning ended');

  // No secret of the base config in the logs, the Events or the host.
  const haystack = [world.logs.text(), JSON.stringify(events), JSON.stringify(booted)].join('\n');
  for (const [name, value] of Object.entries(FAKE_SECRETS))
    assert.ok(!haystack.includes(value), `${name} leaked`);
});

/** The event sink's address, as the Talos family logs it when it starts. */
async function sinkAddress(): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const entry = world.logs.entries.find((e) => e.msg === 'Talos config delivery ready');
    const address = (entry?.fields as { eventSinkAddress?: string } | undefined)?.eventSinkAddress;
    if (address) return address;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the Talos family did not log its addresses');
}
