import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBmcAddress, supportedSchemes } from '../../src/bmc/address.ts';
import { BmcAddressError } from '../../src/bmc/errors.ts';

test('redfish:// is HTTPS on port 443 and keeps the System path', () => {
  const a = parseBmcAddress('redfish://10.0.10.11/redfish/v1/Systems/System.Embedded.1');
  assert.equal(a.protocol, 'redfish');
  if (a.protocol !== 'redfish') return;
  assert.equal(a.baseUrl, 'https://10.0.10.11:443');
  assert.equal(a.tls, true);
  assert.equal(a.vendor, 'generic');
  assert.equal(a.systemPath, '/redfish/v1/Systems/System.Embedded.1');
  assert.equal(a.key, '10.0.10.11:443');
});

test('redfish+http:// is plain HTTP, port 80 unless given', () => {
  const a = parseBmcAddress('redfish+http://bmc.example:80/redfish/v1/Systems/1/');
  assert.equal(a.protocol === 'redfish' && a.baseUrl, 'http://bmc.example:80');
  assert.equal(a.protocol === 'redfish' && a.systemPath, '/redfish/v1/Systems/1');
  const b = parseBmcAddress('redfish+http://bmc.example:8000');
  assert.equal(b.protocol === 'redfish' && b.baseUrl, 'http://bmc.example:8000');
  const c = parseBmcAddress('redfish+https://bmc.example:8443');
  assert.equal(c.protocol === 'redfish' && c.baseUrl, 'https://bmc.example:8443');
});

test('a Redfish address without a System path leaves the System to be discovered', () => {
  for (const raw of ['redfish://10.0.0.1', 'redfish://10.0.0.1/', 'redfish://10.0.0.1/redfish/v1/Systems']) {
    const a = parseBmcAddress(raw);
    assert.equal(a.protocol === 'redfish' && a.systemPath, undefined, raw);
  }
});

test('idrac-redfish:// and ilo5-redfish:// select the vendor quirks', () => {
  const idrac = parseBmcAddress('idrac-redfish://10.0.0.2/redfish/v1/Systems/System.Embedded.1');
  const ilo = parseBmcAddress('ilo5-redfish+http://10.0.0.3:8080/redfish/v1/Systems/1');
  assert.equal(idrac.protocol === 'redfish' && idrac.vendor, 'idrac');
  assert.equal(ilo.protocol === 'redfish' && ilo.vendor, 'ilo5');
  assert.equal(ilo.protocol === 'redfish' && ilo.baseUrl, 'http://10.0.0.3:8080');
});

test('ipmi:// defaults to UDP port 623, and a bare host is IPMI as in Metal3', () => {
  const a = parseBmcAddress('ipmi://10.0.10.12');
  assert.deepEqual(
    { protocol: a.protocol, host: a.host, port: a.port, key: a.key },
    { protocol: 'ipmi', host: '10.0.10.12', port: 623, key: '10.0.10.12:623' },
  );
  const b = parseBmcAddress('10.0.10.13:6230');
  assert.equal(b.protocol, 'ipmi');
  assert.equal(b.port, 6230);
});

test('an IPv6 BMC keeps brackets in the URL and drops them for ipmitool', () => {
  const r = parseBmcAddress('redfish://[fd00::10]:8443/redfish/v1/Systems/1');
  assert.equal(r.protocol === 'redfish' && r.baseUrl, 'https://[fd00::10]:8443');
  const i = parseBmcAddress('ipmi://[fd00::11]');
  assert.equal(i.host, 'fd00::11');
  assert.equal(i.port, 623);
});

test('an unknown scheme is an error naming every supported scheme', () => {
  assert.throws(
    () => parseBmcAddress('wsman://10.0.0.1'),
    (error: unknown) => {
      assert.ok(error instanceof BmcAddressError);
      assert.match(error.message, /unsupported scheme "wsman:\/\/"/);
      for (const scheme of supportedSchemes) assert.ok(error.message.includes(scheme), scheme);
      assert.equal(error.field, 'bmc.address');
      return true;
    },
  );
});

test('a Metal3 virtual-media scheme says what to use instead', () => {
  assert.throws(
    () => parseBmcAddress('redfish-virtualmedia://10.0.0.1/redfish/v1/Systems/1'),
    /use redfish:\/\//,
  );
});

test('credentials in the address are refused without echoing the password', () => {
  assert.throws(
    () => parseBmcAddress('redfish://admin:hunter22@10.0.0.1/redfish/v1/Systems/1'),
    (error: unknown) => {
      assert.ok(error instanceof BmcAddressError);
      assert.match(error.message, /must not contain credentials/);
      assert.ok(!error.message.includes('hunter22'));
      assert.ok(!error.bmc.includes('hunter22'));
      return true;
    },
  );
});

test('malformed addresses are refused with the reason', () => {
  assert.throws(() => parseBmcAddress('redfish://10.0.0.1/redfish/v1/Managers/1'), /is not a Redfish System/);
  assert.throws(() => parseBmcAddress('ipmi://10.0.0.1/redfish'), /ipmi:\/\/ address has no path/);
  assert.throws(() => parseBmcAddress('ipmi://10.0.0.1:70000'), /not a valid URL|out of range/);
  assert.throws(() => parseBmcAddress('   '), /is empty/);
  assert.throws(() => parseBmcAddress('redfish://10.0.0.1/redfish/v1/Systems/1?x=1'), /query or fragment/);
});

test('an IPMI host is a hostname or an IP literal, nothing ipmitool or a shell could read as more', () => {
  for (const ok of ['ipmi://bmc-07.rack2.example.com', 'bmc07', 'ipmi://10.0.0.1:624', 'ipmi://[fd00::11]']) {
    assert.equal(parseBmcAddress(ok).protocol, 'ipmi', ok);
  }
  for (const bad of [
    'ipmi://10.0.0.1;id',
    '-oProxyCommand=x',
    'ipmi://-H',
    'ipmi://a_b',
    'ipmi://$(id)',
    'ipmi://a..b',
  ]) {
    assert.throws(
      () => parseBmcAddress(bad, 'spec.bmc.address'),
      (error: unknown) =>
        error instanceof BmcAddressError &&
        error.field === 'spec.bmc.address' &&
        /is not a hostname .* or an IP address|not a valid URL/.test(error.message),
      bad,
    );
  }
});

test('an address error names the field it came from', () => {
  assert.throws(
    () => parseBmcAddress('ftp://10.0.0.1', 'spec.bmc.address'),
    /spec\.bmc\.address "ftp:\/\/10\.0\.0\.1"/,
  );
});

test('a colon with no port after it is an error, not the default port', () => {
  for (const raw of [
    'redfish+http://10.0.0.1:',
    'redfish://10.0.0.1:/redfish/v1/Systems/1',
    'ipmi://[fd00::1]:',
  ]) {
    assert.throws(
      () => parseBmcAddress(raw, '--address'),
      (error: unknown) => {
        assert.ok(error instanceof BmcAddressError);
        assert.match(error.message, /^--address ".*": has an empty port after ":"$/);
        return true;
      },
      raw,
    );
  }
  assert.equal((parseBmcAddress('redfish+http://10.0.0.1:8000') as { port: number }).port, 8000);
});

test('a Redfish address keeps its scheme as written, for hints pasted back', () => {
  const parsed = parseBmcAddress('iDRAC-Redfish+HTTP://10.0.0.1:8000');
  assert.equal(parsed.protocol === 'redfish' && parsed.scheme, 'idrac-redfish+http');
});
