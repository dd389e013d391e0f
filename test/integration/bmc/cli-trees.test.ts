// `metalbox bmc` as an operator meets it on real vendors' trees (served by our Redfish mockup server):
// the several-Systems hint pasted back, a graceful request that can only be forced, the boot-once
// read-back, the Basic fallback line, and addresses that must not be guessed at.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { run } from '../../../src/cli/bmc.ts';
import { scratchDir } from '../../env/peers.ts';
import { type RedfishMockup, type RedfishTree, startRedfishMockup } from '../../env/redfish-mockup.ts';

const scratch = scratchDir('bmc-cli-trees');
const started: RedfishMockup[] = [];
after(async () => {
  await Promise.all(started.map((m) => m.close()));
  scratch.remove();
});

async function mockup(tree: RedfishTree, sessions = true) {
  const m = await startRedfishMockup({ tree, sessions, transitionMs: 200 });
  started.push(m);
  writeFileSync(join(scratch.dir, `${tree}-${m.port}`), `${m.password}\n`);
  return m;
}

const flags = (m: RedfishMockup, address: string) => [
  '--address',
  address,
  '--username',
  m.username,
  '--password-file',
  join(scratch.dir, `${m.tree}-${m.port}`),
];

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    readStdin: () => '',
  });
  return { code, stdout, stderr };
}

test('several Systems: every address in the hint works when pasted back into --address', async () => {
  const m = await mockup('dmtf-bladed');
  const first = await cli(['power-status', ...flags(m, `redfish+http://127.0.0.1:${m.port}`)]);
  assert.equal(first.code, 1);
  assert.match(first.stderr, /--address "redfish\+http:\/\/127\.0\.0\.1:\d+": the BMC has 4 Systems/);
  const hinted = [
    ...first.stderr.matchAll(/redfish\+http:\/\/127\.0\.0\.1:\d+\/redfish\/v1\/Systems\/\w+/g),
  ].map((x) => x[0]);
  assert.equal(hinted.length, 4);
  for (const address of hinted) {
    const again = await cli(['power-status', ...flags(m, address)]);
    assert.deepEqual([again.code, again.stdout], [0, 'on\n'], again.stderr);
  }
});

test('Supermicro: power-off --graceful is refused without --force, and with it says it forced', async () => {
  const m = await mockup('supermicro-x12');
  const address = `redfish+http://127.0.0.1:${m.port}/redfish/v1/Systems/1`;
  const refused = await cli(['power-off', '--graceful', ...flags(m, address)]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /a graceful power off \(it offers On, ForceOff, .*\).*--force/);
  assert.equal(m.resource('/redfish/v1/Systems/1')?.PowerState, 'On');
  const soft = await cli(['reboot', '--mode', 'soft', ...flags(m, address)]);
  assert.equal(soft.code, 1);
  assert.match(soft.stderr, /a graceful restart/);

  const forced = await cli(['power-off', '--graceful', '--force', ...flags(m, address)]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(
    forced.stderr,
    /^metalbox bmc power-off: warning: the BMC offers no graceful power off .*forced power off as allowed\n$/,
  );
  assert.equal(forced.stdout, `power-off: accepted by ${address}\n`);
  assert.equal(m.resource('/redfish/v1/Systems/1')?.PowerState, 'Off');
});

test('boot-once on a Legacy iDRAC 9 leaves the mode alone and prints what the BMC reads back', async () => {
  const m = await mockup('dell-idrac-r6515');
  const address = `idrac-redfish+http://127.0.0.1:${m.port}`;
  const res = await cli(['boot-once', '--device', 'pxe', ...flags(m, address)]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(
    res.stdout,
    `boot-once: accepted by ${address}; the BMC reads back Once Pxe (legacy): as asked\n`,
  );
  const boot = m.resource('/redfish/v1/Systems/System.Embedded.1')?.Boot as Record<string, string>;
  assert.equal(boot.BootSourceOverrideMode, 'Legacy');
  assert.equal(m.biosJobs.size, 0);
  const json = await cli(['boot-once', '--device', 'disk', '-o', 'json', ...flags(m, address)]);
  const out = JSON.parse(json.stdout) as { bootOnce: { readBack: { enabled: string; device: string } } };
  assert.deepEqual([out.bootOnce.readBack.enabled, out.bootOnce.readBack.device], ['Once', 'disk']);
});

test('a failed session login falls back to Basic auth and says so once on stderr', async () => {
  const m = await mockup('dmtf-tower', false);
  const res = await cli(['inventory', ...flags(m, `redfish+http://127.0.0.1:${m.port}`)]);
  assert.equal(res.code, 0, res.stderr);
  const warnings = res.stderr.split('\n').filter((l) => l.includes('warning:'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /session login .* failed \(HTTP 405\); using Basic auth/);
  assert.ok(!res.stderr.includes(m.password));
  assert.match(res.stdout, /^cpu {11}8 x Intel\(R\) Xeon\(R\) Gold 5218 2\.3GHz$/m);
});

test('iDRAC 8 memory is printed rounded; an address with an empty port is a usage error', async () => {
  const m = await mockup('dell-idrac-r820');
  const inv = await cli(['inventory', ...flags(m, `redfish+http://127.0.0.1:${m.port}`)]);
  assert.match(inv.stdout, /^memory {8}476\.84 GiB$/m);
  const bad = await cli(['power-status', ...flags(m, 'redfish+http://127.0.0.1:')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--address "redfish\+http:\/\/127\.0\.0\.1:": has an empty port after ":"/);
});
