// IPMI driver with Debian's ipmitool against OpenIPMI's ipmi_sim. The simulator refuses cipher suite 17
// (so the driver's fallback to 3 is exercised on every fresh BMC) and only powers off on `power cycle`.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type SecretLike,
  secretCredentialProvider,
  staticCredentials,
} from '../../../src/bmc/credentials.ts';
import {
  BmcAuthError,
  BmcCredentialsError,
  BmcTimeoutError,
  BmcUnreachableError,
} from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import { type IpmiSimPeer, runIpmitool, startIpmiSim } from '../../env/ipmisim.ts';
import { peerBinary } from '../../env/peers.ts';
import { captureLogger } from './helpers.ts';

let sim: IpmiSimPeer;
let blackhole: Socket;
let blackholePort: number;
const log = captureLogger();
const factory = createBmcFactory({
  logger: log.logger,
  protection: { failureThreshold: 1000 },
  ipmi: { ipmitool: peerBinary('ipmitool'), pollIntervalMs: 200, cycleSettleMs: 1000 },
});

before(async () => {
  sim = await startIpmiSim({ name: 'ipmi-driver' });
  // A UDP port that swallows every packet: an unresponsive BMC.
  blackhole = createSocket('udp4');
  await new Promise<void>((resolve) => blackhole.bind(0, '127.0.0.1', resolve));
  blackholePort = blackhole.address().port;
});
after(async () => {
  blackhole?.close();
  await sim?.destroy();
});

const address = () => `ipmi://127.0.0.1:${sim.port}`;
const driver = () =>
  factory.create({ address: address(), credentials: staticCredentials(sim.username, sim.password) });

/** Every process's argv as text, by pid. */
function allCommandLines(): Map<number, string> {
  const out = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      out.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' '));
    } catch {
      // the process exited while we looked
    }
  }
  return out;
}

const ipmitoolPidsFor = (port: number) =>
  [...allCommandLines()]
    .filter(([, cmd]) => cmd.includes('ipmitool') && cmd.includes(`-p ${port} `))
    .map(([pid]) => pid);

test('cipher suite 17 is tried first, 3 is used when the BMC refuses it, and remembered for that BMC', async () => {
  const d = driver();
  const before = log.lines().length;
  assert.equal(await d.powerState(), 'off');
  assert.equal(await d.powerState(), 'off');
  const lines = log.lines().slice(before);
  const refused = lines.filter((l) => l.msg === 'cipher suite refused; trying the next');
  assert.deepEqual(
    refused.map((l) => l.cipherSuite),
    [17],
    'only the first call tried 17',
  );
  assert.match(String(refused[0]?.detail), /invalid authentication algorithm/);
  assert.deepEqual(
    lines
      .filter((l) => l.msg === 'IPMI cipher suite works; remembered for this BMC')
      .map((l) => l.cipherSuite),
    [3],
  );
});

test('power on and off are reflected in the simulator; a graceful off that hangs is forced', async () => {
  const d = driver();
  await d.powerOn();
  assert.equal(sim.state().power, 'on');
  assert.equal(await d.powerState(), 'on');
  const callsBefore = sim.calls().length;
  // ipmi_sim records an ACPI soft-off but does not act on it, like an OS that ignores the button.
  await d.powerOff({ graceful: true, timeoutMs: 500 });
  const calls = sim.calls().slice(callsBefore);
  assert.ok(calls.includes('set shutdown 1'), calls.join(', '));
  assert.ok(
    calls.indexOf('set power 0') > calls.indexOf('set shutdown 1'),
    'forced off after the soft request',
  );
  assert.equal(sim.state().power, 'off');
});

test('a hard reboot power-cycles the host and powers it back on where the BMC only powers off', async () => {
  const d = driver();
  await d.reboot({ mode: 'hard' });
  assert.equal(sim.state().power, 'on', 'rebooting a host that is off powers it on');
  const callsBefore = sim.calls().length;
  await d.reboot({ mode: 'hard' });
  const calls = sim.calls().slice(callsBefore);
  // `chassis power cycle` reaches the simulator as "set power 0"; the driver then powers the host on.
  const off = calls.indexOf('set power 0');
  assert.ok(off >= 0, calls.join(', '));
  assert.ok(calls.indexOf('set power 1', off) > off, calls.join(', '));
  assert.equal(sim.state().power, 'on');
});

test('boot-once PXE, then disk, is reflected in the simulator', async () => {
  const d = driver();
  await d.setBootOnce({ device: 'pxe', mode: 'UEFI' });
  assert.equal(sim.state().bootDevice, 'pxe');
  const param = await runIpmitool(sim, ['chassis', 'bootparam', 'get', '5']);
  assert.match(param.stdout, /Boot Device Selector : Force PXE/);
  // ipmi_sim keeps only the device (its boot flags read back as "legacy, invalid" whatever was sent), so the
  // efiboot/legacy choice is checked in test/unit/bmc-ipmi-commands.test.ts instead.
  await d.setBootOnce({ device: 'disk', mode: 'legacy' });
  assert.equal(sim.state().bootDevice, 'default', 'the simulator calls the default hard drive "default"');
});

test('a wrong password is an authentication error naming the BMC, without the password', async () => {
  const wrong = 'not-the-password';
  const d = factory.create({ address: address(), credentials: staticCredentials(sim.username, wrong) });
  await assert.rejects(d.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcAuthError, String(error));
    assert.match(
      error.message,
      new RegExp(
        `^BMC ipmi://127\\.0\\.0\\.1:${sim.port} rejected the credentials as user "admin": RAKP 2 HMAC is invalid`,
      ),
    );
    assert.ok(!error.message.includes(wrong));
    return true;
  });
  await assert.rejects(d.validateCredentials(), BmcAuthError);
  await driver().validateCredentials();
  assert.ok(!log.text().includes(wrong) && !log.text().includes(sim.password), 'no password in the logs');
});

test('the password is in no process’s argv while ipmitool runs, only in its environment', async () => {
  const secret = `canary-${Date.now() % 1e9}`;
  // The unresponsive BMC keeps ipmitool running for seconds, long enough to look at every process.
  const patient = createBmcFactory({
    ipmi: { ipmitool: peerBinary('ipmitool'), callTimeoutMs: 3000, retransmitSeconds: 1, retransmits: 3 },
  });
  const d = patient.create({
    address: `ipmi://127.0.0.1:${blackholePort}`,
    credentials: staticCredentials('admin', secret),
  });
  const call = d.powerState().catch((error: unknown) => error);
  let seen: number[] = [];
  for (let i = 0; i < 100 && seen.length === 0; i++) {
    seen = ipmitoolPidsFor(blackholePort);
    if (seen.length === 0) await sleep(20);
  }
  assert.ok(
    seen.length > 0,
    `an ipmitool process was observed while the call ran (${String(await Promise.race([call, sleep(1).then(() => 'still running')]))})`,
  );
  for (const [pid, cmd] of allCommandLines())
    assert.ok(!cmd.includes(secret), `password in argv of pid ${pid}`);
  const environ = readFileSync(`/proc/${seen[0]}/environ`, 'utf8').split('\0');
  assert.ok(environ.includes(`IPMI_PASSWORD=${secret}`), 'ipmitool reads it from IPMI_PASSWORD (-E)');
  assert.ok(allCommandLines().get(seen[0]!)?.includes(' -E '));
  const outcome = await call;
  assert.ok(outcome instanceof BmcUnreachableError || outcome instanceof BmcTimeoutError, String(outcome));
  assert.ok(!String((outcome as Error).message).includes(secret));
});

test('the password is in no process’s argv while ipmitool talks to the simulator', async () => {
  const d = driver();
  let done = false;
  let finished = false;
  const calls = (async () => {
    for (let i = 0; i < 20 && !done; i++) await d.powerState();
  })().finally(() => {
    finished = true;
  });
  let observed = 0;
  while (observed === 0 && !finished) {
    const lines = allCommandLines();
    for (const [pid, cmd] of lines) assert.ok(!cmd.includes(sim.password), `password in argv of pid ${pid}`);
    observed = [...lines.values()].filter(
      (cmd) => cmd.includes('ipmitool') && cmd.includes(`-p ${sim.port} `),
    ).length;
    if (observed === 0) await sleep(2);
  }
  done = true;
  await calls;
  assert.ok(observed > 0, 'an ipmitool process talking to the simulator was observed');
});

test('an unresponsive BMC is a timeout, and the killed ipmitool is reaped before the call returns', async () => {
  const slow = createBmcFactory({
    ipmi: { ipmitool: peerBinary('ipmitool'), callTimeoutMs: 800, retransmitSeconds: 5, retransmits: 5 },
  });
  const d = slow.create({
    address: `ipmi://127.0.0.1:${blackholePort}`,
    credentials: staticCredentials('admin', 'x1'),
  });
  const started = Date.now();
  await assert.rejects(d.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcTimeoutError);
    assert.match(error.message, /did not answer ipmitool chassis power status within 800 ms/);
    return true;
  });
  assert.ok(Date.now() - started < 3000);
  assert.deepEqual(ipmitoolPidsFor(blackholePort), [], 'no ipmitool left running');
});

test('a BMC that never answers before ipmitool gives up is unreachable', async () => {
  const quick = createBmcFactory({
    ipmi: { ipmitool: peerBinary('ipmitool'), retransmitSeconds: 1, retransmits: 1 },
  });
  const d = quick.create({
    address: `ipmi://127.0.0.1:${blackholePort}`,
    credentials: staticCredentials('admin', 'x2'),
  });
  await assert.rejects(d.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcUnreachableError);
    assert.match(error.message, /no IPMI answer on UDP port \d+: .*Get Auth Capabilities error/);
    return true;
  });
});

test('inventory reports the system GUID and manufacturer, and what IPMI cannot tell', async () => {
  const inventory = await driver().inventory();
  const guid = /System GUID\s*:\s*(\S+)/.exec((await runIpmitool(sim, ['mc', 'guid'])).stdout)?.[1];
  assert.equal(inventory.uuid?.replaceAll('-', ''), guid?.toLowerCase().replaceAll('-', ''));
  assert.equal(inventory.manufacturer, 'MontaVista Software, Inc.');
  assert.deepEqual(inventory.nics, []);
  assert.ok(inventory.incomplete.includes('memory: not available over IPMI'));
  assert.ok(
    inventory.incomplete.some((i) => i.startsWith('fru: ')),
    'the simulator has no FRU data',
  );
});

test('a password longer than IPMI allows is a credentials error, not an ipmitool failure', async () => {
  const tooLong = 'x'.repeat(21);
  const d = factory.create({ address: address(), credentials: staticCredentials(sim.username, tooLong) });
  await assert.rejects(d.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcCredentialsError);
    assert.match(error.message, /longer than the 20 bytes IPMI 2\.0 allows/);
    assert.ok(!error.message.includes(tooLong));
    return true;
  });
});

test('a rotated Secret is used from the next call, with the same driver', async () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let secret: SecretLike = {
    metadata: { name: 'ipmi-creds', resourceVersion: '10' },
    data: { username: b64(sim.username), password: b64('old-password') },
  };
  const d = factory.create({
    address: address(),
    credentials: secretCredentialProvider(() => secret, address()),
  });
  await assert.rejects(d.powerState(), BmcAuthError);
  secret = {
    metadata: { name: 'ipmi-creds', resourceVersion: '11' },
    data: { username: b64(sim.username), password: b64(sim.password) },
  };
  assert.ok(['on', 'off'].includes(await d.powerState()));
});
