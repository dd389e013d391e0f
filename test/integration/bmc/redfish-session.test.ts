// Redfish features sushy-tools does not serve (SessionService, ETags, 202 task monitors) and vendor quirks,
// against the FAKE Redfish service in fake-hostile-redfish.ts.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { staticCredentials } from '../../../src/bmc/credentials.ts';
import { BmcAuthError, BmcTaskError, BmcUnsupportedError } from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import {
  type FakeHostileRedfish,
  type FakeRedfishOptions,
  startFakeHostileRedfish,
} from './fake-hostile-redfish.ts';

const username = 'operator';
const password = 'fake-bmc-Secret-9';
let fake: FakeHostileRedfish | undefined;
const factory = createBmcFactory({
  redfish: { pollIntervalMs: 20, retryBaseMs: 20, requestTimeoutMs: 3000 },
});

afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

async function setup(options: Partial<FakeRedfishOptions> = {}, scheme = 'redfish+http') {
  fake = await startFakeHostileRedfish({ username, password, ...options });
  const address = `${scheme}://127.0.0.1:${fake.port}${fake.systemPath}`;
  return { fake, driver: factory.create({ address, credentials: staticCredentials(username, password) }) };
}

test('fake BMC with a SessionService: one login, then the token, never the password', async () => {
  const { fake, driver } = await setup({ sessions: true });
  await driver.powerState();
  await driver.powerState();
  const logins = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Sessions'));
  assert.equal(logins.length, 1);
  const afterLogin = fake.requests.slice(fake.requests.indexOf(logins[0]!) + 1);
  assert.ok(afterLogin.length >= 2);
  assert.ok(
    afterLogin.every((r) => r.auth === 'token'),
    'no Basic credentials after login',
  );
  await driver.close();
});

test('fake BMC: an expired session is logged into again once, transparently', async () => {
  const { fake, driver } = await setup({ sessions: true });
  assert.equal(await driver.powerState(), 'off');
  fake.expireSessions();
  assert.equal(await driver.powerState(), 'off');
  assert.equal(fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Sessions')).length, 2);
  await driver.close();
});

test('fake BMC: closing the driver logs the session out', async () => {
  const { fake, driver } = await setup({ sessions: true });
  await driver.powerState();
  assert.equal(fake.liveSessions(), 1);
  await driver.close();
  assert.equal(fake.liveSessions(), 0);
  assert.ok(
    fake.requests.some(
      (r) => r.method === 'DELETE' && r.path.startsWith('/redfish/v1/SessionService/Sessions/'),
    ),
  );
});

test('fake BMC: an advertised SessionService that refuses logins falls back to Basic auth', async () => {
  const { fake, driver } = await setup({ sessions: true });
  fake.fault('POST /redfish/v1/SessionService/Sessions', { kind: 'status', status: 405 });
  assert.equal(await driver.powerState(), 'off');
  assert.equal(fake.requests.at(-1)?.auth, 'basic');
  await driver.close();
});

test('fake BMC: closing the factory logs out every driver it made', async () => {
  fake = await startFakeHostileRedfish({ username, password, sessions: true });
  const own = createBmcFactory();
  const address = `redfish+http://127.0.0.1:${fake.port}${fake.systemPath}`;
  const drivers = [1, 2].map(() =>
    own.create({ address, credentials: staticCredentials(username, password) }),
  );
  for (const d of drivers) await d.powerState();
  assert.equal(fake.liveSessions(), 2);
  await own.closeAll();
  assert.equal(fake.liveSessions(), 0);
});

test('fake BMC: a wrong password at session login is an authentication error', async () => {
  fake = await startFakeHostileRedfish({ username, password, sessions: true });
  const driver = factory.create({
    address: `redfish+http://127.0.0.1:${fake.port}${fake.systemPath}`,
    credentials: staticCredentials(username, 'wrong-one'),
  });
  await assert.rejects(driver.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcAuthError);
    assert.match(error.message, /HTTP 401: Invalid credentials/);
    return true;
  });
  await driver.close();
});

test('fake BMC: rotated credentials log the old session out and open a new one', async () => {
  fake = await startFakeHostileRedfish({ username, password, sessions: true });
  let version = 'v1';
  const driver = factory.create({
    address: `redfish+http://127.0.0.1:${fake.port}${fake.systemPath}`,
    credentials: () => ({ username, password, version }),
  });
  await driver.powerState();
  version = 'v2';
  await driver.powerState();
  assert.equal(fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Sessions')).length, 2);
  assert.equal(fake.requests.filter((r) => r.method === 'DELETE').length, 1);
  assert.equal(fake.liveSessions(), 1);
  await driver.close();
});

test('fake BMC: boot-once asking for another mode sends Once, the target and the mode, with the System ETag as If-Match', async () => {
  const { fake, driver } = await setup({ etags: true });
  await driver.setBootOnce({ device: 'pxe', mode: 'legacy' });
  const patch = fake.requests.find((r) => r.method === 'PATCH');
  assert.equal(patch?.ifMatch, 'W/"1"');
  assert.deepEqual(patch?.body, {
    Boot: {
      BootSourceOverrideEnabled: 'Once',
      BootSourceOverrideTarget: 'Pxe',
      BootSourceOverrideMode: 'Legacy',
    },
  });
  assert.equal(fake.state.boot.BootSourceOverrideEnabled, 'Once');
  await driver.close();
});

test('fake BMC: a stale ETag (412) is re-read and the PATCH retried once', async () => {
  const { fake, driver } = await setup({ etags: true });
  fake.fault(`PATCH ${fake.systemPath}`, { kind: 'status', status: 412 }, 1);
  await driver.setBootOnce({ device: 'disk' });
  assert.equal(fake.requests.filter((r) => r.method === 'PATCH').length, 2);
  assert.equal(fake.state.boot.BootSourceOverrideTarget, 'Hdd');
  await driver.close();
});

test('fake BMC: a 202 Accepted reset is followed through its task monitor', async () => {
  const { fake, driver } = await setup({ asyncReset: { polls: 3, end: 'Completed' } });
  await driver.powerOn();
  assert.equal(fake.requests.filter((r) => r.path === '/redfish/v1/TaskService/TaskMonitors/1').length, 4);
  assert.deepEqual(fake.state.resets, ['On']);
  await driver.close();
});

test('fake BMC: a task that ends in Exception is a task error carrying the BMC message', async () => {
  const { driver } = await setup({ asyncReset: { polls: 1, end: 'Exception' } });
  await assert.rejects(driver.powerOn(), (error: unknown) => {
    assert.ok(error instanceof BmcTaskError);
    assert.match(error.message, /task Exception: Power supply refused the request/);
    return true;
  });
  await driver.close();
});

test('fake BMC without GracefulRestart: a soft reboot is a graceful shutdown, then power on', async () => {
  const { fake, driver } = await setup({
    allowableResetTypes: ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart'],
  });
  await driver.powerOn();
  await driver.reboot({ mode: 'soft', timeoutMs: 2000 });
  assert.deepEqual(fake.state.resets, ['On', 'GracefulShutdown', 'On']);
  await driver.close();
});

test('fake BMC: a reset type the System does not advertise is an unsupported error listing what it offers', async () => {
  const { driver } = await setup({ allowableResetTypes: ['On', 'GracefulShutdown'] });
  await driver.powerOn();
  await assert.rejects(driver.powerOff(), (error: unknown) => {
    assert.ok(error instanceof BmcUnsupportedError);
    assert.match(error.message, /a reset for "forceOff" \(it offers On, GracefulShutdown\)/);
    return true;
  });
  await driver.close();
});

test('fake BMC: boot-once without a mode, or with the current one, never writes the boot mode', async () => {
  const { fake, driver } = await setup();
  await driver.setBootOnce({ device: 'pxe' });
  await driver.setBootOnce({ device: 'disk', mode: 'UEFI' });
  const patches = fake.requests.filter((r) => r.method === 'PATCH').map((r) => r.body);
  assert.deepEqual(patches, [
    { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' } },
    { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Hdd' } },
  ]);
  await driver.close();
});

test('fake iLO 5: the boot mode is never written, and a different mode is refused with the fix', async () => {
  const { fake, driver } = await setup({}, 'ilo5-redfish+http');
  await driver.setBootOnce({ device: 'pxe', mode: 'UEFI' });
  assert.deepEqual(fake.requests.find((r) => r.method === 'PATCH')?.body, {
    Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' },
  });
  await assert.rejects(
    driver.setBootOnce({ device: 'pxe', mode: 'legacy' }),
    /change it to Legacy in the BIOS settings/,
  );
  await driver.close();
});

test('fake iDRAC: the boot mode is sent only when it changes', async () => {
  const { fake, driver } = await setup({}, 'idrac-redfish+http');
  await driver.setBootOnce({ device: 'pxe', mode: 'UEFI' });
  await driver.setBootOnce({ device: 'pxe', mode: 'legacy' });
  const patches = fake.requests.filter((r) => r.method === 'PATCH').map((r) => r.body);
  assert.deepEqual(patches, [
    { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' } },
    {
      Boot: {
        BootSourceOverrideEnabled: 'Once',
        BootSourceOverrideTarget: 'Pxe',
        BootSourceOverrideMode: 'Legacy',
      },
    },
  ]);
  await driver.close();
});
