import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyFailure, meaningfulLines, parseGuid, parsePowerStatus } from '../../src/bmc/ipmi/parse.ts';

test('power status is read from every known wording of ipmitool and vendors', () => {
  assert.equal(parsePowerStatus('Chassis Power is on\n'), 'on');
  assert.equal(parsePowerStatus('Chassis Power is off\n'), 'off');
  assert.equal(parsePowerStatus('Chassis power is: ON'), 'on');
  assert.equal(parsePowerStatus('Power is off'), 'off');
  assert.equal(parsePowerStatus('System Power         : on\nPower Overload       : false\n'), 'on');
});

test('an unrecognised power answer is not guessed', () => {
  assert.equal(parsePowerStatus(''), undefined);
  assert.equal(parsePowerStatus('Chassis Power Control: Up/On'), undefined);
  assert.equal(parsePowerStatus('Power Restore Policy : always-off'), undefined);
  assert.equal(parsePowerStatus('Chassis Power is unknown'), undefined);
});

test('ipmitool failures are classified from their real messages', () => {
  // Observed with ipmitool 1.8.19 against OpenIPMI's ipmi_sim (see test/integration/bmc/ipmi.test.ts).
  assert.equal(
    classifyFailure('> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n'),
    'auth',
  );
  assert.equal(
    classifyFailure(
      'RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session',
    ),
    'auth',
  );
  assert.equal(
    classifyFailure(
      'Error in open session response message : invalid authentication algorithm\n\nError: Unable to establish IPMI v2 / RMCP+ session\n',
    ),
    'cipher',
  );
  // virtualbmc (pyghmi) offers only cipher suite 3 and answers a suite-17 request with its own algorithm.
  assert.equal(
    classifyFailure(
      'Authentication algorithm 0x01 is not what we requested 0x03\nError: Unable to establish IPMI v2 / RMCP+ session\n',
    ),
    'cipher',
  );
  assert.equal(
    classifyFailure(
      'Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n',
    ),
    'unreachable',
  );
  assert.equal(classifyFailure('Error: Unable to establish IPMI v2 / RMCP+ session\n'), 'session');
  assert.equal(
    classifyFailure('Set Chassis Power Control to Cycle failed: Command not supported in present state'),
    'command',
  );
  assert.equal(classifyFailure('Error: Insufficient privilege level'), 'privilege');
});

test('the system GUID is read from mc guid and rejected when malformed', () => {
  const out =
    'System GUID   : 4F8C8417-B32C-45F2-7324-DC0BD0F5BF3D\nGUID Encoding : SMBIOS (WARNING: IPMI Specification violation!)\n';
  assert.equal(parseGuid(out), '4f8c8417-b32c-45f2-7324-dc0bd0f5bf3d');
  assert.equal(
    parseGuid('System GUID   : E149C3E9E691FC08160FB567DB32C385\n'),
    'e149c3e9-e691-fc08-160f-b567db32c385',
  );
  assert.equal(parseGuid('System GUID : not-a-guid\n'), undefined);
  assert.equal(parseGuid(''), undefined);
});

test('verbose chatter is dropped from error excerpts', () => {
  const stderr =
    'Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\nDiscovered IPMB address 0x0\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n';
  assert.equal(
    meaningfulLines(stderr),
    'RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session',
  );
});
