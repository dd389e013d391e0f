import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideBootMode, detectVendor, quirksFor, quirksForDetected } from '../../src/bmc/redfish/quirks.ts';

test('the boot mode is sent only when asked and different; Supermicro re-sends the current one; iLO 5 never', () => {
  const generic = quirksFor('generic');
  assert.deepEqual(decideBootMode(generic, undefined, 'Legacy', undefined), { send: undefined });
  assert.deepEqual(decideBootMode(generic, 'legacy', 'Legacy', undefined), { send: undefined });
  assert.deepEqual(decideBootMode(generic, 'UEFI', 'Legacy', undefined), { send: 'UEFI' });
  assert.deepEqual(decideBootMode(quirksFor('idrac'), undefined, 'Legacy', undefined), { send: undefined });
  const smc = quirksForDetected('supermicro');
  assert.deepEqual(decideBootMode(smc, undefined, 'UEFI', undefined), { send: 'UEFI' });
  assert.deepEqual(decideBootMode(smc, 'legacy', 'UEFI', undefined), { send: 'Legacy' });
  const ilo = quirksFor('ilo5');
  assert.deepEqual(decideBootMode(ilo, 'UEFI', 'UEFI', undefined), { send: undefined });
  assert.match(
    (decideBootMode(ilo, 'legacy', 'UEFI', undefined) as { refuse: string }).refuse,
    /BIOS settings/,
  );
  assert.match(
    (decideBootMode(generic, 'legacy', 'UEFI', ['UEFI']) as { refuse: string }).refuse,
    /boot mode Legacy \(it offers UEFI\)/,
  );
  assert.deepEqual(decideBootMode(generic, undefined, undefined, undefined), { send: undefined });
  assert.ok('unavailable' in decideBootMode(generic, 'legacy', undefined, undefined));
});

test('the vendor comes from the service root: Vendor, then Oem keys, then Product', () => {
  assert.equal(detectVendor({ Vendor: 'Dell' }), 'dell');
  assert.equal(
    detectVendor({ Product: 'Integrated Dell Remote Access Controller', Oem: { Dell: {} } }),
    'dell',
  );
  assert.equal(detectVendor({ Oem: { Hpe: {} } }), 'hpe');
  assert.equal(detectVendor({ Vendor: 'HPE' }), 'hpe');
  assert.equal(detectVendor({ Vendor: 'Supermicro', Product: null }), 'supermicro');
  assert.equal(detectVendor({ Vendor: 'Lenovo', Product: 'ThinkSystem' }), 'lenovo');
  assert.equal(detectVendor({ Vendor: 'Contoso' }), 'other');
  assert.equal(detectVendor({}), 'other');
});
