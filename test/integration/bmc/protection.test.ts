// The per-BMC limiter and circuit breaker in front of real emulators (and the fake Redfish service, which
// can count how many requests it serves at once).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { staticCredentials } from '../../../src/bmc/credentials.ts';
import { BmcUnreachableError, CircuitOpenError } from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import { type IpmiSimPeer, startIpmiSim } from '../../env/ipmisim.ts';
import { peerBinary } from '../../env/peers.ts';
import { type SushyPeer, startSushy } from '../../env/sushy.ts';
import { startFakeHostileRedfish } from './fake-hostile-redfish.ts';
import { captureLogger } from './helpers.ts';

let sushy: SushyPeer;
let sim: IpmiSimPeer;
before(async () => {
  [sushy, sim] = await Promise.all([
    startSushy({ name: 'sushy-limiter', systems: [{ name: 'lim-01', macs: ['52:54:00:dd:00:01'] }] }),
    startIpmiSim({ name: 'ipmi-limiter' }),
  ]);
});
after(async () => {
  await Promise.all([sushy?.destroy(), sim?.destroy()]);
});

/** Start/finish events of one BMC's operations, in the order they were logged. */
function operationEvents(lines: Record<string, unknown>[], bmc: string): string[] {
  return lines
    .filter((l) => l.bmc === bmc && (l.msg === 'bmc operation started' || l.msg === 'bmc operation finished'))
    .map((l) => (l.msg === 'bmc operation started' ? 'start' : 'end'));
}

test('20 concurrent power calls against one BMC never overlap (sushy-tools and ipmi_sim)', async () => {
  const log = captureLogger();
  const factory = createBmcFactory({ logger: log.logger, ipmi: { ipmitool: peerBinary('ipmitool') } });
  const redfish = factory.create({
    address: `redfish+http://127.0.0.1:${sushy.port}`,
    credentials: staticCredentials(sushy.username, sushy.password),
  });
  const ipmi = factory.create({
    address: `ipmi://127.0.0.1:${sim.port}`,
    credentials: staticCredentials(sim.username, sim.password),
  });
  const calls = (d: typeof redfish) =>
    Array.from({ length: 20 }, (_, i) => (i % 5 === 4 ? d.powerOn() : d.powerState()));
  const results = await Promise.allSettled([...calls(redfish), ...calls(ipmi)]);
  assert.deepEqual(
    results.filter((r) => r.status === 'rejected'),
    [],
    'every call succeeded',
  );
  for (const driver of [redfish, ipmi]) {
    const events = operationEvents(log.lines(), driver.address);
    assert.equal(events.length, 40);
    // Strict alternation start, end, start, end... means no operation began before the previous ended.
    assert.deepEqual(
      events,
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 'start' : 'end')),
      driver.address,
    );
  }
  await redfish.close();
});

test('the fake BMC never serves more than one request at a time for 20 concurrent calls', async () => {
  const fake = await startFakeHostileRedfish({ username: 'admin', password: 'limiter-pass' });
  try {
    const driver = createBmcFactory().create({
      address: `redfish+http://127.0.0.1:${fake.port}${fake.systemPath}`,
      credentials: staticCredentials('admin', 'limiter-pass'),
    });
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? driver.powerOn() : driver.powerState())));
    assert.equal(fake.maxConcurrent(), 1);
    assert.ok(fake.requests.length >= 20);
    await driver.close();
  } finally {
    await fake.stop();
  }
});

test('the circuit opens after N failures of a stopped emulator and closes once it is back', async () => {
  const registry = new Registry();
  const factory = createBmcFactory({
    registry,
    protection: { failureThreshold: 3, openMs: 500 },
    redfish: { retries: 0, requestTimeoutMs: 2000 },
  });
  const driver = factory.create({
    address: `redfish+http://127.0.0.1:${sushy.port}`,
    credentials: staticCredentials(sushy.username, sushy.password),
  });
  const key = `127.0.0.1:${sushy.port}`;
  const circuitGauge = async () =>
    (await registry.getSingleMetric('metalbox_bmc_circuit_state')!.get()).values.find(
      (v) => v.labels.bmc === key,
    )?.value;

  assert.ok(['on', 'off'].includes(await driver.powerState()), 'reachable before the stop');
  await sushy.stop();
  for (let i = 0; i < 3; i++) await assert.rejects(driver.powerState(), BmcUnreachableError);
  assert.equal(factory.protection.circuitState(key), 'open');
  assert.equal(await circuitGauge(), 2);
  await assert.rejects(driver.powerState(), CircuitOpenError, 'fails fast while open');

  await sushy.start();
  await sleep(600);
  assert.ok(
    ['on', 'off'].includes(await driver.powerState()),
    'the trial operation reaches the emulator again',
  );
  assert.equal(factory.protection.circuitState(key), 'closed');
  assert.equal(await circuitGauge(), 0);
  const metrics = await registry.metrics();
  assert.match(
    metrics,
    new RegExp(`metalbox_bmc_operations_total\\{bmc="${key}",operation="powerState",result="rejected"\\} 1`),
  );
  await driver.close();
});
