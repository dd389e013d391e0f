// `metalbox bmc` against the real emulators: flags, output formats and errors a person reads.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/cli/bmc.ts';
import { type IpmiSimPeer, startIpmiSim } from '../../env/ipmisim.ts';
import { scratchDir } from '../../env/peers.ts';
import { type SushyPeer, startSushy } from '../../env/sushy.ts';

let sushy: SushyPeer;
let sim: IpmiSimPeer;
const scratch = scratchDir('bmc-cli');
const sushyPasswordFile = join(scratch.dir, 'sushy-password');
const simPasswordFile = join(scratch.dir, 'sim-password');

before(async () => {
  [sushy, sim] = await Promise.all([
    startSushy({ name: 'sushy-cli', systems: [{ name: 'cli-01', macs: ['52:54:00:ee:00:01'] }] }),
    startIpmiSim({ name: 'ipmi-cli' }),
  ]);
  writeFileSync(sushyPasswordFile, `${sushy.password}\n`);
  writeFileSync(simPasswordFile, sim.password);
});
after(async () => {
  await Promise.all([sushy?.destroy(), sim?.destroy()]);
  scratch.remove();
});

async function cli(args: string[], stdin = '') {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    readStdin: () => stdin,
  });
  return { code, stdout, stderr };
}

const sushyFlags = () => [
  '--address',
  `redfish+http://127.0.0.1:${sushy.port}`,
  '--username',
  sushy.username,
  '--password-file',
  sushyPasswordFile,
];
const simFlags = () => [
  '--address',
  `ipmi://127.0.0.1:${sim.port}`,
  '--username',
  sim.username,
  '--password-file',
  simPasswordFile,
];

test('power-status -o json prints the state of a Redfish BMC as JSON', async () => {
  const { code, stdout, stderr } = await cli(['power-status', ...sushyFlags(), '-o', 'json']);
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout), {
    address: `redfish+http://127.0.0.1:${sushy.port}`,
    command: 'power-status',
    powerState: 'off',
    notices: [],
    result: 'ok',
  });
});

test('boot-once and power-on against the IPMI simulator are reflected in it', async () => {
  const boot = await cli(['boot-once', ...simFlags(), '--device', 'pxe']);
  assert.equal(boot.code, 0, boot.stderr);
  // What the simulator reads back (chassis bootparam get 5) is printed, not assumed.
  assert.match(
    boot.stdout,
    new RegExp(
      `^boot-once: accepted by ipmi://127\\.0\\.0\\.1:${sim.port}; the BMC reads back \\w+ Force PXE.*: as asked\n$`,
    ),
  );
  assert.equal(sim.state().bootDevice, 'pxe');
  const on = await cli(['power-on', ...simFlags()]);
  assert.equal(on.code, 0, on.stderr);
  assert.equal(sim.state().power, 'on');
  const status = await cli(['power-status', ...simFlags()]);
  assert.equal(status.stdout, 'on\n');
});

test('inventory in text lists the emulator’s UUID and MAC, and what it could not read', async () => {
  const { code, stdout } = await cli(['inventory', ...sushyFlags()]);
  assert.equal(code, 0);
  assert.match(stdout, new RegExp(`^uuid +${sushy.systems[0]!.uuid}$`, 'm'));
  assert.match(stdout, /^nic +52:54:00:ee:00:01 link unknown/m);
  assert.match(stdout, /^not reported +storage \/redfish\/v1\/Systems\/[\w-]+\/Storage: HTTP 500$/m);
});

test('the password can be read from stdin', async () => {
  const flags = sushyFlags();
  flags[flags.indexOf(sushyPasswordFile)] = '-';
  const { code, stdout } = await cli(['power-status', ...flags], `${sushy.password}\n`);
  assert.equal(code, 0);
  assert.equal(stdout, 'off\n');
});

test('a wrong password exits 1 with a message naming the BMC, no stack trace, no password', async () => {
  const wrongFile = join(scratch.dir, 'wrong');
  writeFileSync(wrongFile, 'wrong-password-123\n');
  const { code, stdout, stderr } = await cli([
    'power-status',
    '--address',
    `ipmi://127.0.0.1:${sim.port}`,
    '--username',
    'admin',
    '--password-file',
    wrongFile,
    '-o',
    'json',
  ]);
  assert.equal(code, 1);
  assert.match(
    stderr,
    new RegExp(`^metalbox bmc power-status: BMC ipmi://127\\.0\\.0\\.1:${sim.port} rejected the credentials`),
  );
  assert.equal(stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  assert.equal(JSON.parse(stdout).error.code, 'BmcAuth');
  assert.ok(!stderr.includes('wrong-password-123') && !stdout.includes('wrong-password-123'));
});

test('flag mistakes are usage errors (exit 2) that name the flag', async () => {
  const missing = await cli(['power-status', '--address', 'ipmi://127.0.0.1', '--username', 'admin']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^metalbox bmc: --password-file is required/);

  const scheme = await cli(['power-status', ...sushyFlags().slice(2), '--address', 'wsman://10.0.0.1']);
  assert.equal(scheme.code, 2);
  assert.match(
    scheme.stderr,
    /--address "wsman:\/\/10\.0\.0\.1": unsupported scheme "wsman:\/\/"; supported: ipmi:\/\/, redfish:\/\//,
  );

  const device = await cli(['boot-once', ...simFlags()]);
  assert.equal(device.code, 2);
  assert.match(device.stderr, /--device is required for boot-once \(pxe or disk\)/);

  const mode = await cli(['reboot', ...simFlags(), '--mode', 'gentle', '--timeout', 'soon']);
  assert.equal(mode.code, 2);
  assert.match(mode.stderr, /--timeout must be a whole number of seconds; --mode must be soft or hard/);

  const unknown = await cli(['power-cycle', ...simFlags()]);
  assert.equal(unknown.code, 2);
  assert.match(
    unknown.stderr,
    /command must be one of power-status, power-on, power-off, reboot, boot-once, inventory/,
  );

  const noFile = await cli([
    'power-status',
    ...simFlags().slice(0, 4),
    '--password-file',
    join(scratch.dir, 'absent'),
  ]);
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /--password-file: cannot read .*absent: ENOENT/);
});

test('`metalbox bmc` is a registered subcommand of the metalbox CLI', async () => {
  // The CLI entry from source (bin/metalbox prefers a dist/ build, which may be stale during development).
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const args = [
    join(root, 'scripts/node'),
    join(root, 'src/cli/main.ts'),
    'bmc',
    'power-status',
    ...sushyFlags(),
  ];
  const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile('bash', args, { timeout: 60_000 }, (error, stdout) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout });
    });
  });
  assert.equal(result.code, 0);
  assert.equal(result.stdout, 'off\n');
});
