import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootdevCommand, parseBootFlags } from '../../src/bmc/ipmi/driver.ts';
import { ipmitoolArgs } from '../../src/bmc/ipmi/ipmitool.ts';

test('boot-once in UEFI mode adds efiboot; legacy does not; neither is persistent', () => {
  assert.deepEqual(bootdevCommand({ device: 'pxe' }), ['chassis', 'bootdev', 'pxe', 'options=efiboot']);
  assert.deepEqual(bootdevCommand({ device: 'disk', mode: 'UEFI' }), [
    'chassis',
    'bootdev',
    'disk',
    'options=efiboot',
  ]);
  assert.deepEqual(bootdevCommand({ device: 'pxe', mode: 'legacy' }), ['chassis', 'bootdev', 'pxe']);
  for (const device of ['pxe', 'disk'] as const) {
    assert.ok(!bootdevCommand({ device }).some((a) => a.includes('persistent')));
  }
});

test('ipmitool argv carries -E and the cipher suite, never the password', () => {
  const args = ipmitoolArgs(
    { host: 'fd00::5', port: 6230, username: 'admin', password: 'Pa55-word', cipherSuite: 17 },
    { timeoutMs: 1000 },
    ['chassis', 'power', 'status'],
  );
  assert.ok(!args.some((a) => a.includes('Pa55-word')));
  assert.ok(!args.includes('-P'), 'never -P <password>');
  assert.ok(args.includes('-E'));
  assert.deepEqual(args.slice(args.indexOf('-C'), args.indexOf('-C') + 2), ['-C', '17']);
  assert.deepEqual(args.slice(args.indexOf('-H'), args.indexOf('-H') + 4), ['-H', 'fd00::5', '-p', '6230']);
  assert.deepEqual(args.slice(-3), ['chassis', 'power', 'status']);
});

test('a Continuous override adds persistent beside efiboot', () => {
  assert.deepEqual(bootdevCommand({ device: 'disk', enabled: 'Continuous' }), [
    'chassis',
    'bootdev',
    'disk',
    'options=efiboot,persistent',
  ]);
});

test('boot flags read back from `chassis bootparam get 5` (as OpenIPMI’s simulator prints them)', () => {
  const text = [
    'Boot parameter version: 1',
    'Boot parameter 5 is valid/unlocked',
    'Boot parameter data: 0004000000',
    ' Boot Flags :',
    '   - Boot Flag Invalid',
    '   - Options apply to only next boot',
    '   - BIOS PC Compatible (legacy) boot ',
    '   - Boot Device Selector : Force PXE',
  ].join('\n');
  assert.deepEqual(parseBootFlags(text), {
    enabled: 'Disabled',
    device: 'pxe',
    target: 'Force PXE',
    mode: 'legacy',
  });
  const valid = text
    .replace('Boot Flag Invalid', 'Boot Flag Valid')
    .replace('only next boot', 'all future boots')
    .replace('BIOS PC Compatible (legacy) boot', 'BIOS EFI boot')
    .replace('Force PXE', 'Force Boot from default Hard-Drive');
  assert.deepEqual(parseBootFlags(valid), {
    enabled: 'Continuous',
    device: 'disk',
    target: 'Force Boot from default Hard-Drive',
    mode: 'UEFI',
  });
  assert.deepEqual(parseBootFlags('Error: unknown'), { enabled: 'unknown' });
});
