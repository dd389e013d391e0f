import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../../src/runtime/backoff.ts';
import { WorkQueue } from '../../src/runtime/queue.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

test('one key is never reconciled twice at once under a burst of 1,000 adds, and the last add is seen', async () => {
  const keys = ['ns/a', 'ns/b', 'ns/c'];
  const version = new Map(keys.map((k) => [k, 0]));
  const lastSeen = new Map<string, number>();
  const active = new Map<string, number>();
  let maxPerKey = 0;
  let maxTotal = 0;
  let runs = 0;
  const queue = new WorkQueue(
    async (key) => {
      runs++;
      const now = (active.get(key) ?? 0) + 1;
      active.set(key, now);
      maxPerKey = Math.max(maxPerKey, now);
      maxTotal = Math.max(
        maxTotal,
        [...active.values()].reduce((a, b) => a + b, 0),
      );
      lastSeen.set(key, version.get(key)!);
      await sleep(Math.random() * 2);
      active.set(key, now - 1);
    },
    { workers: 4 },
  );
  for (let i = 0; i < 1000; i++) {
    const key = keys[i % keys.length]!;
    version.set(key, version.get(key)! + 1);
    queue.add(key);
    if (i % 7 === 0) await nextTurn();
  }
  await queue.idle();
  assert.equal(maxPerKey, 1, 'a key ran in two workers at once');
  assert.ok(maxTotal <= 3, `at most one run per key: ${maxTotal} ran together`);
  assert.ok(runs < 1000, `adds were not deduplicated (${runs} runs)`);
  for (const key of keys) assert.equal(lastSeen.get(key), version.get(key), `${key} missed its last add`);
  await queue.shutdown();
});

test('adding a key that is already waiting does not queue it twice', async () => {
  const gate = deferred();
  const seen: string[] = [];
  const queue = new WorkQueue(async (key) => {
    seen.push(key);
    if (key === 'blocker') await gate.promise;
  });
  queue.add('blocker');
  for (let i = 0; i < 5; i++) queue.add('x');
  assert.equal(queue.depth, 1);
  gate.resolve();
  await queue.idle();
  assert.deepEqual(seen, ['blocker', 'x']);
});

test('a key added while it is processing runs once more afterwards', async () => {
  const gate = deferred();
  let runs = 0;
  const queue = new WorkQueue(async () => {
    runs++;
    if (runs === 1) await gate.promise;
  });
  queue.add('k');
  await nextTurn();
  queue.add('k');
  queue.add('k');
  gate.resolve();
  await queue.idle();
  assert.equal(runs, 2);
});

test('no more than `workers` keys are processed at once', async () => {
  let active = 0;
  let max = 0;
  const queue = new WorkQueue(
    async () => {
      active++;
      max = Math.max(max, active);
      await sleep(5);
      active--;
    },
    { workers: 3 },
  );
  for (let i = 0; i < 12; i++) queue.add(`k${i}`);
  await queue.idle();
  assert.equal(max, 3);
});

test('backoff doubles from base to cap, and jitter only shortens it', () => {
  const options = { baseMs: 100, capMs: 1000, jitter: 0.2 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 60].map((n) => backoffDelay(n, options, () => 0)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
  assert.equal(
    backoffDelay(3, options, () => 1),
    320,
  );
  for (let i = 0; i < 1000; i++) {
    const failures = 1 + (i % 8);
    const raw = Math.min(1000, 100 * 2 ** (failures - 1));
    const d = backoffDelay(failures, options);
    assert.ok(
      d >= raw * 0.8 && d <= raw,
      `delay ${d} for ${failures} failures is outside [${raw * 0.8}, ${raw}]`,
    );
  }
});

test('failures back off per key with growing delays, and success forgets them', async () => {
  const delays: number[] = [];
  let attempts = 0;
  const queue = new WorkQueue(
    async () => {
      attempts++;
      if (attempts <= 4) throw new Error('transient');
    },
    {
      backoff: { baseMs: 4, capMs: 16, jitter: 0.5 },
      random: () => 0.5,
      onError: (_key, _error, failures, delay) => delays.push(failures, delay),
    },
  );
  queue.add('k');
  while (attempts < 5 || queue.processing > 0) await sleep(2);
  assert.deepEqual(delays, [1, 3, 2, 6, 3, 12, 4, 12]);
  assert.equal(queue.failures('k'), 0, 'success forgets the failures');
  await queue.shutdown();
});

test('requeueAfter processes the key again after the delay', async () => {
  const times: number[] = [];
  const queue = new WorkQueue(async () => {
    times.push(Date.now());
    return times.length === 1 ? { requeueAfter: 40 } : {};
  });
  queue.add('k');
  while (times.length < 2) await sleep(5);
  assert.ok(times[1]! - times[0]! >= 35, `requeued after ${times[1]! - times[0]!} ms`);
  await sleep(60);
  assert.equal(times.length, 2, 'a result without requeueAfter does not requeue');
  await queue.shutdown();
});

test('the earlier of two schedules for a key wins', async () => {
  let runs = 0;
  const queue = new WorkQueue(async () => {
    runs++;
  });
  queue.addAfter('k', 60_000);
  queue.addAfter('k', 5);
  while (runs === 0) await sleep(2);
  assert.equal(queue.delayed, 0);
  await queue.shutdown();
});

test('shutdown stops taking work and waits for in-flight keys', async () => {
  const gate = deferred();
  const seen: string[] = [];
  let finished = false;
  const queue = new WorkQueue(
    async (key) => {
      seen.push(key);
      if (key === 'slow') {
        await gate.promise;
        finished = true;
      }
    },
    { workers: 1 },
  );
  queue.add('slow');
  queue.add('waiting');
  queue.addAfter('later', 5);
  let stopped = false;
  const stopping = queue.shutdown().then(() => {
    stopped = true;
  });
  await sleep(20);
  assert.equal(stopped, false, 'shutdown returned while a key was in flight');
  queue.add('after-shutdown');
  gate.resolve();
  await stopping;
  assert.equal(finished, true);
  assert.deepEqual(seen, ['slow']);
});
