import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Condition,
  findCondition,
  isCurrent,
  isFalse,
  isTrue,
  removeCondition,
  setCondition,
} from '../../src/runtime/conditions.ts';

const t0 = new Date('2026-01-01T00:00:00.000Z');
const t1 = new Date('2026-01-01T00:05:00.000Z');

test('lastTransitionTime moves only when status changes', () => {
  const first = setCondition(
    undefined,
    { type: 'Ready', status: 'False', reason: 'Booting', message: 'PXE' },
    t0,
  );
  assert.equal(first[0]!.lastTransitionTime, '2026-01-01T00:00:00Z');
  const same = setCondition(
    first,
    { type: 'Ready', status: 'False', reason: 'Installing', message: 'writing disk', observedGeneration: 2 },
    t1,
  );
  assert.deepEqual(same, [
    {
      type: 'Ready',
      status: 'False',
      reason: 'Installing',
      message: 'writing disk',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 2,
    },
  ]);
  const flipped = setCondition(same, { type: 'Ready', status: 'True', reason: 'Booted', message: '' }, t1);
  assert.equal(flipped[0]!.lastTransitionTime, '2026-01-01T00:05:00Z');
  assert.equal(first[0]!.reason, 'Booting', 'the input list is not changed');
});

test('conditions of other types are kept in place', () => {
  let list: Condition[] = [];
  list = setCondition(list, { type: 'A', status: 'True', reason: 'R', message: '' }, t0);
  list = setCondition(list, { type: 'B', status: 'False', reason: 'R', message: '' }, t0);
  list = setCondition(list, { type: 'A', status: 'False', reason: 'R2', message: '' }, t1);
  assert.deepEqual(
    list.map((c) => [c.type, c.status]),
    [
      ['A', 'False'],
      ['B', 'False'],
    ],
  );
  assert.deepEqual(
    removeCondition(list, 'A').map((c) => c.type),
    ['B'],
  );
});

test('find, isTrue, isFalse and isCurrent read a condition', () => {
  const list = setCondition(
    undefined,
    { type: 'Ready', status: 'True', reason: 'Ok', message: '', observedGeneration: 3 },
    t0,
  );
  assert.equal(findCondition(list, 'Ready')?.reason, 'Ok');
  assert.equal(findCondition(list, 'Missing'), undefined);
  assert.equal(isTrue(list, 'Ready'), true);
  assert.equal(isFalse(list, 'Ready'), false);
  assert.equal(isTrue(list, 'Missing'), false);
  assert.equal(isCurrent(list, 'Ready', 3), true);
  assert.equal(isCurrent(list, 'Ready', 4), false);
});
