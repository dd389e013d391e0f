// Redfish driver against sushy-tools' fake driver. The fake applies power changes 1-11 s after a reset
// (like real hardware), so power tests poll the emulator's System resource.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseBmcAddress } from '../../../src/bmc/address.ts';
import {
  type SecretLike,
  secretCredentialProvider,
  staticCredentials,
} from '../../../src/bmc/credentials.ts';
import { BmcAddressError, BmcAuthError, BmcNotFoundError } from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import { RedfishDriver } from '../../../src/bmc/redfish/driver.ts';
import { type SushyPeer, startSushy } from '../../env/sushy.ts';
import { waitFor } from '../../env/wait.ts';
import { captureLogger } from './helpers.ts';

let solo: SushyPeer;
let pair: SushyPeer;
const log = captureLogger();
const factory = createBmcFactory({ logger: log.logger, redfish: { pollIntervalMs: 300, retryBaseMs: 100 } });

before(async () => {
  [solo, pair] = await Promise.all([
    startSushy({
      name: 'sushy-solo',
      systems: [{ name: 'solo', macs: ['52:54:00:AA:00:01', '52:54:00:aa:00:02'] }],
    }),
    startSushy({
      name: 'sushy-pair',
      systems: [
        { name: 'cp-01', macs: ['52:54:00:bb:00:01'] },
        { name: 'cp-02', macs: ['52:54:00:bb:00:02'] },
      ],
    }),
  ]);
});
after(async () => {
  await Promise.all([solo?.destroy(), pair?.destroy()]);
});

const addressOf = (peer: SushyPeer, system?: string) =>
  `redfish+http://127.0.0.1:${peer.port}${system ? `/redfish/v1/Systems/${system}` : ''}`;
const driverFor = (peer: SushyPeer, system?: string) =>
  factory.create({
    address: addressOf(peer, system),
    credentials: staticCredentials(peer.username, peer.password),
  });
const emulatorPower = async (peer: SushyPeer, uuid: string) =>
  (await peer.get(`/redfish/v1/Systems/${uuid}`)).PowerState as string;
const waitPower = (peer: SushyPeer, uuid: string, want: 'On' | 'Off') =>
  waitFor(async () => (await emulatorPower(peer, uuid)) === want, {
    what: `emulator PowerState ${want}`,
    timeoutMs: 25_000,
    intervalMs: 300,
  });
const resetTypes = () =>
  log
    .lines()
    .filter((l) => l.msg === 'sending reset')
    .map((l) => l.resetType);

test('without a System path the only System on the BMC is used', async () => {
  const driver = driverFor(solo);
  assert.equal(await driver.powerState(), 'off');
  await driver.close();
});

test('power on, graceful-then-forced off, and reboots are reflected in the emulator System', async () => {
  const system = pair.systems[0]!;
  const driver = driverFor(pair, system.uuid);
  try {
    await driver.powerOn();
    await waitPower(pair, system.uuid, 'On');
    assert.equal(await driver.powerState(), 'on');

    // The fake driver takes at least 1 s to act, so a 200 ms graceful window always expires.
    const before = resetTypes().length;
    await driver.powerOff({ graceful: true, timeoutMs: 200 });
    assert.deepEqual(resetTypes().slice(before), ['GracefulShutdown', 'ForceOff']);
    await waitPower(pair, system.uuid, 'Off');

    const beforeReboot = resetTypes().length;
    await driver.reboot({ mode: 'hard' });
    assert.deepEqual(resetTypes().slice(beforeReboot), ['On'], 'rebooting a host that is off powers it on');
    await waitPower(pair, system.uuid, 'On');

    const beforeHard = resetTypes().length;
    await driver.reboot({ mode: 'hard' });
    assert.deepEqual(resetTypes().slice(beforeHard), ['ForceRestart']);
    // The fake shows a restart as Off at once and On 1-11 s later.
    await waitPower(pair, system.uuid, 'On');
    const beforeSoft = resetTypes().length;
    await driver.reboot({ mode: 'soft' });
    assert.deepEqual(resetTypes().slice(beforeSoft), ['GracefulRestart'], 'sushy advertises GracefulRestart');
    await waitPower(pair, system.uuid, 'On');

    await driver.powerOff();
    await waitPower(pair, system.uuid, 'Off');
    assert.equal(await driver.powerState(), 'off');
  } finally {
    await driver.close();
  }
});

test('boot-once PXE in UEFI mode, then disk, is reflected in the emulator System', async () => {
  const system = pair.systems[1]!;
  const driver = driverFor(pair, system.uuid);
  try {
    await driver.setBootOnce({ device: 'pxe', mode: 'UEFI' });
    let boot = (await pair.get(`/redfish/v1/Systems/${system.uuid}`)).Boot as Record<string, string>;
    assert.equal(boot.BootSourceOverrideTarget, 'Pxe');
    assert.equal(boot.BootSourceOverrideMode, 'UEFI');
    // sushy-tools' fake driver ignores BootSourceOverrideEnabled (it always reports Continuous), so
    // "Once" is checked in the request the driver sent, against the fake server in redfish-session.test.ts.
    await driver.setBootOnce({ device: 'disk' });
    boot = (await pair.get(`/redfish/v1/Systems/${system.uuid}`)).Boot as Record<string, string>;
    assert.equal(boot.BootSourceOverrideTarget, 'Hdd');
  } finally {
    await driver.close();
  }
});

test('inventory returns the emulator’s MACs and SMBIOS UUID, and says what it could not read', async () => {
  const driver = driverFor(solo);
  try {
    const inventory = await driver.inventory();
    assert.equal(inventory.uuid, solo.systems[0]!.uuid.toLowerCase());
    assert.equal(inventory.manufacturer, 'Sushy Emulator');
    assert.deepEqual(
      inventory.nics.map((n) => n.mac).sort(),
      ['52:54:00:aa:00:01', '52:54:00:aa:00:02'],
      'MACs are normalised to lower case',
    );
    // The fake driver answers Storage with HTTP 500; inventory reports that, with the path, instead of failing.
    assert.ok(
      inventory.incomplete.includes(`storage /redfish/v1/Systems/${solo.systems[0]!.uuid}/Storage: HTTP 500`),
      inventory.incomplete.join(', '),
    );
    assert.deepEqual(inventory.disks, []);
  } finally {
    await driver.close();
  }
});

test('a wrong password is an authentication error naming the BMC, not a stack trace or the password', async () => {
  const wrong = 'definitely-not-it';
  const driver = factory.create({ address: addressOf(solo), credentials: staticCredentials('admin', wrong) });
  await assert.rejects(driver.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcAuthError);
    assert.match(
      error.message,
      new RegExp(
        `^BMC redfish\\+http://127\\.0\\.0\\.1:${solo.port} rejected the credentials as user "admin": HTTP 401`,
      ),
    );
    assert.ok(!error.message.includes(wrong));
    assert.ok(!error.message.includes(' at '), 'no stack frames in the message');
    return true;
  });
  await assert.rejects(driver.validateCredentials(), BmcAuthError);
  await driver.close();
  const good = driverFor(solo);
  await good.validateCredentials();
  await good.close();
  assert.ok(!log.text().includes(wrong), 'the password is not in the logs');
  assert.ok(!log.text().includes(solo.password), 'the good password is not in the logs');
});

test('a rotated Secret is used from the next operation, with the same driver', async () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let secret: SecretLike = {
    metadata: { name: 'bmc-solo', resourceVersion: '1' },
    data: { username: b64(solo.username), password: b64('stale-password') },
  };
  const driver = factory.create({
    address: addressOf(solo),
    credentials: secretCredentialProvider(() => secret, addressOf(solo)),
  });
  await assert.rejects(driver.powerState(), BmcAuthError);
  secret = {
    ...secret,
    metadata: { name: 'bmc-solo', resourceVersion: '2' },
    data: { ...secret.data, password: b64(solo.password) },
  };
  assert.equal(await driver.powerState(), 'off');
  await driver.close();
});

test('sushy-tools advertises no SessionService, so the driver authenticates with Basic', async () => {
  const root = await solo.get('/redfish/v1/');
  assert.equal(root.SessionService, undefined, 'the emulator has no SessionService');
  const driver = new RedfishDriver({
    address: parseBmcAddress(addressOf(solo)) as never,
    credentials: staticCredentials(solo.username, solo.password),
  });
  await driver.powerState();
  assert.equal(driver.authMode, 'basic');
  await driver.close();
});

test('a System path that does not exist is a not-found error listing the Systems the BMC has', async () => {
  const driver = driverFor(pair, 'no-such-system');
  await assert.rejects(driver.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcNotFoundError);
    assert.match(error.message, /System \/redfish\/v1\/Systems\/no-such-system does not exist/);
    for (const s of pair.systems) assert.ok(error.message.includes(s.uuid), s.name);
    return true;
  });
  await driver.close();
});

test('no System path on a BMC with several Systems is an error listing the addresses to use, as written (+http kept)', async () => {
  const driver = driverFor(pair);
  await assert.rejects(driver.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcAddressError);
    assert.match(error.message, /the BMC has 2 Systems; add the one to manage to the address/);
    for (const s of pair.systems) {
      assert.ok(
        error.message.includes(`redfish+http://127.0.0.1:${pair.port}/redfish/v1/Systems/${s.uuid}`),
        s.name,
      );
    }
    return true;
  });
  await driver.close();
});
