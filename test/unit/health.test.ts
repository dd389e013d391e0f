// Ready / Reconciling / Stalled (kstatus conventions): one verdict sets all three, abnormal-true
// conditions leave when they stop being true, and the Matchbox objects' verdict follows Synced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type SyncStatus, syncHealth } from '../../src/controllers/matchbox/status.ts';
import type { Condition } from '../../src/runtime/conditions.ts';
import { reasonOf, withHealth } from '../../src/runtime/health.ts';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:01:00Z');
const types = (list: Condition[]) => list.map((c) => `${c.type}=${c.status}`).sort();

test('one verdict sets Ready and only the abnormal-true condition that holds', () => {
  const working = withHealth(
    [],
    { state: 'reconciling', reason: 'Provisioning', message: 'installing' },
    2,
    t0,
  );
  assert.deepEqual(types(working), ['Ready=False', 'Reconciling=True']);
  assert.ok(working.every((c) => c.observedGeneration === 2 && c.reason === 'Provisioning'));
  const stuck = withHealth(working, { state: 'stalled', reason: 'Conflict', message: 'same MAC' }, 2, t1);
  assert.deepEqual(types(stuck), ['Ready=False', 'Stalled=True']);
  // Ready stayed False: its transition time is kept.
  assert.equal(stuck.find((c) => c.type === 'Ready')?.lastTransitionTime, '2026-01-01T00:00:00Z');
  const done = withHealth(stuck, { state: 'ready', reason: 'Provisioned', message: 'installed' }, 3, t1);
  assert.deepEqual(types(done), ['Ready=True']);
  const parked = withHealth(done, { state: 'waiting', reason: 'Detached', message: 'detached' }, 3, t1);
  assert.deepEqual(types(parked), ['Ready=False']);
  // Other conditions are left alone.
  const other: Condition[] = [
    { type: 'Synced', status: 'True', reason: 'Synced', message: '', lastTransitionTime: 'x' },
  ];
  assert.deepEqual(types(withHealth(other, { state: 'ready', reason: 'Synced', message: '' }, 1, t0)), [
    'Ready=True',
    'Synced=True',
  ]);
});

test('reasonOf turns an error type into a condition reason', () => {
  assert.equal(reasonOf('provisioning error'), 'ProvisioningError');
  assert.equal(reasonOf('power management error'), 'PowerManagementError');
  assert.equal(reasonOf('available'), 'Available');
});

const synced = (status: 'True' | 'False', reason: string, generation = 1): Condition => ({
  type: 'Synced',
  status,
  reason,
  message: `${reason} message`,
  lastTransitionTime: 'x',
  observedGeneration: generation,
});

test('Matchbox objects: Synced for this generation is Ready; an unfixable failure is Stalled', () => {
  const of = (conditions: Condition[], generation = 1, deleting = false) =>
    syncHealth({ conditions } as SyncStatus, generation, deleting);
  assert.equal(of([synced('True', 'Synced')]).state, 'ready');
  // Synced for an older generation says nothing about this one.
  assert.deepEqual(of([synced('True', 'Synced', 1)], 2).state, 'reconciling');
  assert.equal(of([synced('False', 'Unreachable')]).state, 'reconciling');
  assert.equal(of([synced('False', 'Pending')]).state, 'reconciling');
  for (const reason of ['InvalidSpec', 'UnknownCA', 'ClientCertRejected', 'ServerNameMismatch'])
    assert.equal(of([synced('False', reason)]).state, 'stalled', reason);
  const missingProfile: Condition = {
    type: 'ProfileResolved',
    status: 'False',
    reason: 'ProfileNotFound',
    message: 'no profile',
    lastTransitionTime: 'x',
  };
  assert.deepEqual(of([synced('True', 'Synced'), missingProfile]), {
    state: 'reconciling',
    reason: 'ProfileNotFound',
    message: 'no profile',
  });
  const shared: Condition = { ...missingProfile, type: 'SelectorUnique', reason: 'SharedWithUnownedGroup' };
  assert.equal(of([synced('True', 'Synced'), shared]).state, 'stalled');
  assert.equal(of([synced('True', 'Synced')], 1, true).reason, 'Deleting');
});
