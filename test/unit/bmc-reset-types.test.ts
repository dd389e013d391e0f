import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseResetType } from '../../src/bmc/redfish/reset-types.ts';

const sushy = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'ForceOn'];
// What iDRAC 9 advertises: no GracefulRestart.
const idrac = ['On', 'ForceOff', 'ForceRestart', 'GracefulShutdown', 'PushPowerButton', 'Nmi', 'PowerCycle'];

test('reset types are chosen from what the System advertises', () => {
  assert.equal(chooseResetType('gracefulRestart', sushy), 'GracefulRestart');
  assert.equal(chooseResetType('forceRestart', sushy), 'ForceRestart');
  assert.equal(chooseResetType('gracefulOff', sushy), 'GracefulShutdown');
});

test('a System without GracefulRestart gets no soft restart, so the driver falls back to shutdown + on', () => {
  assert.equal(chooseResetType('gracefulRestart', idrac), undefined);
  assert.equal(chooseResetType('gracefulOff', idrac), 'GracefulShutdown');
});

test('fallback reset types are used when the preferred one is not offered', () => {
  assert.equal(chooseResetType('gracefulOff', ['On', 'ForceOff', 'PushPowerButton']), 'PushPowerButton');
  assert.equal(chooseResetType('forceRestart', ['On', 'ForceOff', 'PowerCycle']), 'PowerCycle');
  assert.equal(chooseResetType('on', ['ForceOn', 'ForceOff']), 'ForceOn');
  assert.equal(chooseResetType('forceOff', ['On']), undefined);
});

test('a System that advertises nothing is assumed to take the standard values', () => {
  assert.equal(chooseResetType('forceOff', undefined), 'ForceOff');
  assert.equal(chooseResetType('gracefulRestart', []), 'GracefulRestart');
});
