import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { BmcNotFoundError, BmcUnreachableError, CircuitOpenError } from '../../src/bmc/errors.ts';
import { BmcProtection } from '../../src/bmc/protection.ts';

const bmcA = { key: '10.0.0.1:623', display: 'ipmi://10.0.0.1', protocol: 'ipmi' as const };
const bmcB = { key: '10.0.0.2:623', display: 'ipmi://10.0.0.2', protocol: 'ipmi' as const };

function tracker() {
  let current = 0;
  let max = 0;
  return {
    async op(ms: number) {
      current++;
      max = Math.max(max, current);
      await sleep(ms);
      current--;
    },
    get max() {
      return max;
    },
  };
}

test('20 concurrent operations on one BMC run one at a time', async () => {
  const p = new BmcProtection();
  const t = tracker();
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      p.run(bmcA, 'powerState', async () => {
        await t.op(2);
        order.push(i);
      }),
    ),
  );
  assert.equal(t.max, 1);
  assert.deepEqual(order, [...Array(20).keys()], 'first come, first served');
});

test('different BMCs are not serialised behind each other, but share the global cap', async () => {
  const free = new BmcProtection();
  const t = tracker();
  await Promise.all([bmcA, bmcB].flatMap((b) => [1, 2].map(() => free.run(b, 'powerState', () => t.op(20)))));
  assert.equal(t.max, 2, 'one per BMC, both BMCs at once');

  const capped = new BmcProtection({ globalConcurrency: 1 });
  const t2 = tracker();
  await Promise.all([bmcA, bmcB].map((b) => capped.run(b, 'powerState', () => t2.op(20))));
  assert.equal(t2.max, 1);
});

test('the circuit opens after N consecutive failures and then fails fast without calling the BMC', async () => {
  const now = 0;
  const registry = new Registry();
  const p = new BmcProtection({ failureThreshold: 3, openMs: 10_000, now: () => now, registry });
  let calls = 0;
  const failing = () =>
    p.run(bmcA, 'powerOn', async () => {
      calls++;
      throw new BmcUnreachableError(bmcA.display, 'no route');
    });
  for (let i = 0; i < 3; i++) await assert.rejects(failing(), BmcUnreachableError);
  assert.equal(p.circuitState(bmcA.key), 'open');
  await assert.rejects(failing(), (error: unknown) => {
    assert.ok(error instanceof CircuitOpenError);
    assert.match(
      error.message,
      /failed 3 operations in a row.*last error: BMC ipmi:\/\/10\.0\.0\.1 is unreachable/,
    );
    assert.equal(error.retryAfterMs, 10_000);
    return true;
  });
  assert.equal(calls, 3, 'the open circuit did not call the BMC');
  assert.equal(p.circuitState(bmcB.key), 'closed', 'other BMCs are unaffected');

  const gauge = await registry.getSingleMetric('metalbox_bmc_circuit_state')!.get();
  assert.deepEqual(
    gauge.values.find((v) => v.labels.bmc === bmcA.key)?.value,
    2,
    'metalbox_bmc_circuit_state{bmc} is 2 (open)',
  );
  const ops = await registry.getSingleMetric('metalbox_bmc_operations_total')!.get();
  const rejected = ops.values.find((v) => v.labels.result === 'rejected');
  assert.equal(rejected?.value, 1);
});

test('after the open period one trial runs: success closes the circuit, failure doubles the wait', async () => {
  let now = 0;
  const registry = new Registry();
  const p = new BmcProtection({ failureThreshold: 2, openMs: 1000, now: () => now, registry });
  const fail = () =>
    p.run(bmcA, 'powerState', async () => {
      throw new BmcUnreachableError(bmcA.display, 'down');
    });
  await assert.rejects(fail());
  await assert.rejects(fail());
  assert.equal(p.circuitState(bmcA.key), 'open');

  now = 1000;
  await assert.rejects(fail(), BmcUnreachableError, 'the trial reached the BMC');
  assert.equal(p.circuitState(bmcA.key), 'open');
  now = 2500;
  await assert.rejects(fail(), CircuitOpenError, 'the second open period is 2 s, not 1 s');

  now = 3000;
  let release!: () => void;
  const trial = p.run(bmcA, 'powerState', () => new Promise<string>((r) => (release = () => r('on'))));
  await sleep(1);
  assert.equal(p.circuitState(bmcA.key), 'halfOpen');
  await assert.rejects(
    p.run(bmcA, 'powerState', async () => 'x'),
    CircuitOpenError,
    'only one trial at a time',
  );
  release();
  assert.equal(await trial, 'on');
  assert.equal(p.circuitState(bmcA.key), 'closed');
  assert.equal(await p.run(bmcA, 'powerState', async () => 'ok'), 'ok');
  const gauge = await registry.getSingleMetric('metalbox_bmc_circuit_state')!.get();
  assert.equal(gauge.values.find((v) => v.labels.bmc === bmcA.key)?.value, 0);
});

test('caller mistakes (a System that does not exist) do not open the circuit', async () => {
  const p = new BmcProtection({ failureThreshold: 2 });
  for (let i = 0; i < 5; i++) {
    await assert.rejects(
      p.run(bmcA, 'powerState', async () => {
        throw new BmcNotFoundError(bmcA.display, 'System /redfish/v1/Systems/9 does not exist');
      }),
      BmcNotFoundError,
    );
  }
  assert.equal(p.circuitState(bmcA.key), 'closed');
});

test('a success resets the failure count', async () => {
  const p = new BmcProtection({ failureThreshold: 3 });
  const fail = () =>
    p.run(bmcA, 'powerState', async () => {
      throw new BmcUnreachableError(bmcA.display, 'flaky');
    });
  await assert.rejects(fail());
  await assert.rejects(fail());
  await p.run(bmcA, 'powerState', async () => 'on');
  await assert.rejects(fail());
  await assert.rejects(fail());
  assert.equal(p.circuitState(bmcA.key), 'closed');
});

test('a forgotten BMC leaves no limiter, circuit or metric series; one still in use is kept', async () => {
  const registry = new Registry();
  const p = new BmcProtection({ registry, failureThreshold: 1 });
  const series = async () =>
    (await registry.getMetricsAsJSON()).flatMap((m) => m.values).filter((v) => v.labels.bmc === bmcA.key)
      .length;
  await assert.rejects(
    p.run(bmcA, 'powerState', async () => {
      throw new BmcUnreachableError('a', 'refused');
    }),
  );
  assert.equal(p.circuitState(bmcA.key), 'open');
  assert.ok((await series()) > 0);
  let release!: () => void;
  const busy = p.run(bmcB, 'powerState', () => new Promise<void>((r) => (release = r)));
  await p.forget(bmcA.key);
  await p.forget(bmcB.key);
  assert.equal(p.circuitState(bmcA.key), 'closed', 'tracked afresh');
  assert.equal(await series(), 0);
  assert.equal(p.tracked, 1, 'the busy BMC is kept');
  release();
  await busy;
  await p.forget(bmcB.key);
  assert.equal(p.tracked, 0);
});
