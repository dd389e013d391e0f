// The embedded SQLite store under faults, with real processes and a real full disk: SIGKILL in the
// middle of a write loop, again and again, loses nothing acknowledged and brings nothing deleted
// back; a full filesystem (a small tmpfs mounted here, always unmounted) refuses writes with a
// clear read-only error, loses nothing acknowledged, and takes writes again once space returns.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SqliteStore, StoreWriteError } from '../../../src/stores/sqlite.ts';
import { Widget, type WidgetObject } from '../../conformance/kinds.ts';
import { scratchDir } from '../../env/peers.ts';

const scratch = scratchDir('sqlite-faults');
const mounts: string[] = [];
after(() => {
  for (const m of mounts.splice(0)) unmount(m);
  scratch.remove();
});

const WRITER = join(import.meta.dirname, 'fixtures/sqlite-writer.ts');

interface Ledger {
  /** name → the last op acknowledged on it. */
  acked: Map<string, string>;
  /** name → the last op started on it (maybe stored, maybe not, when the writer died). */
  started: Map<string, string>;
}

/** Runs the writer child until `killAfter` acknowledgements (then SIGKILL) or until it finishes. */
async function runWriter(dir: string, first: number, ops: number, killAfter: number, ledger: Ledger) {
  const child = spawn(process.execPath, [WRITER, dir, String(first), String(ops)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  let acks = 0;
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      const [what, op, name] = line.split(' ');
      if (what === 'start') ledger.started.set(name!, op!);
      if (what === 'acked') {
        ledger.acked.set(name!, op!);
        if (++acks === killAfter) child.kill('SIGKILL');
      }
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (c, s) => resolve([c, s])),
  );
  assert.ok(signal === 'SIGKILL' || code === 0, `the writer failed (${code}): ${stderr}`);
  return { killed: signal === 'SIGKILL', acks };
}

/** Every acknowledged create/update is there (unless its delete had started), no acknowledged delete is. */
async function checkLedger(dir: string, ledger: Ledger): Promise<void> {
  const store = await SqliteStore.open(dir);
  try {
    const present = new Map(
      (await store.list<WidgetObject>(Widget)).items.map((w) => [w.metadata.name, w.spec?.size]),
    );
    const lost: string[] = [];
    const back: string[] = [];
    for (const [name, op] of ledger.acked) {
      const started = ledger.started.get(name);
      if (op === 'delete') {
        if (present.has(name)) back.push(name);
      } else if (!present.has(name)) {
        if (started !== 'delete') lost.push(`${name} (${op})`);
      } else if (op === 'update') {
        assert.equal(present.get(name), 1, `${name}: the acknowledged update is lost`);
      }
    }
    assert.deepEqual(lost, [], 'acknowledged writes lost');
    assert.deepEqual(back, [], 'deleted objects came back');
  } finally {
    await store.close();
  }
}

test('SIGKILL during a bounded write loop, repeated, loses nothing acknowledged and revives nothing deleted', async () => {
  const dir = join(scratch.dir, 'killed');
  const ledger: Ledger = { acked: new Map(), started: new Map() };
  const ROUNDS = 6;
  let kills = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Each round writes fresh names and is killed at a different point of its loop.
    const { killed } = await runWriter(dir, round * 10_000, 3000, 40 + round * 37, ledger);
    if (killed) kills++;
    await checkLedger(dir, ledger);
  }
  assert.equal(kills, ROUNDS, 'every round was killed mid-loop');
  assert.ok(ledger.acked.size > ROUNDS * 10, `only ${ledger.acked.size} names acknowledged`);
});

test('a full disk refuses writes as read-only, loses nothing acknowledged, and recovers when space returns', async () => {
  const mountPoint = join(scratch.dir, 'tmpfs');
  mkdirSync(mountPoint);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=640k,mode=0700', 'metalbox-test-enospc', mountPoint]);
  mounts.push(mountPoint);
  try {
    const dir = join(mountPoint, 'store');
    const store = await SqliteStore.open(dir);
    const acked: string[] = [];
    let failure: unknown;
    const big = 'y'.repeat(3000);
    try {
      // Bounded: 640 KiB holds far fewer than 1,000 of these.
      for (let i = 0; i < 1000 && failure === undefined; i += 8) {
        const batch = Array.from({ length: 8 }, (_, j) => `f-${i + j}`);
        const results = await Promise.allSettled(
          batch.map((name) =>
            store.create(Widget, {
              apiVersion: `${Widget.group}/${Widget.version}`,
              kind: Widget.kind,
              metadata: { namespace: 'default', name },
              spec: { color: big },
            }),
          ),
        );
        results.forEach((r, j) => {
          if (r.status === 'fulfilled') acked.push(batch[j]!);
          else failure ??= r.reason;
        });
      }
      assert.ok(failure instanceof StoreWriteError, `the disk never filled, or: ${String(failure)}`);
      assert.match(failure.message, /disk is full: the store is read-only until space is freed/);
      assert.ok(failure.message.startsWith(join(dir, 'store.db')), failure.message);
      assert.ok(acked.length > 10, `only ${acked.length} writes fitted`);
      // Reads go on, and show exactly what was acknowledged.
      const listed = (await store.list(Widget)).items.map((w) => w.metadata.name);
      assert.deepEqual(listed.sort(), [...acked].sort());
      // A failed group commit is rolled back whole, which may leave room for a smaller one: write
      // one at a time until the disk refuses again (bounded), acknowledging only what fitted.
      let refused = false;
      for (let i = 0; i < 200 && !refused; i++) {
        const name = `single-${i}`;
        await store.create(Widget, { ...widget(name), spec: { color: big } }).then(
          () => acked.push(name),
          (error: unknown) => {
            assert.ok(error instanceof StoreWriteError, String(error));
            refused = true;
          },
        );
      }
      assert.ok(refused, 'the full disk took 200 more writes');
      const again = (await store.list(Widget)).items.map((w) => w.metadata.name);
      assert.deepEqual(again.sort(), [...acked].sort());

      // Space returns: the same open store takes writes again.
      execFileSync('mount', ['-o', 'remount,size=8m', mountPoint]);
      const after = await store.create(Widget, { ...widget('after-space'), spec: { color: big } });
      assert.ok(after.metadata.resourceVersion);
    } finally {
      await store.close();
    }
    // Another process opening the directory sees every acknowledged write.
    const reopened = await SqliteStore.open(dir);
    try {
      const names = new Set((await reopened.list(Widget)).items.map((w) => w.metadata.name));
      assert.deepEqual(
        acked.filter((n) => !names.has(n)),
        [],
        'acknowledged writes lost',
      );
      assert.ok(names.has('after-space'));
    } finally {
      await reopened.close();
    }
  } finally {
    unmount(mountPoint);
    mounts.splice(mounts.indexOf(mountPoint), 1);
  }
});

function widget(name: string): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'default', name },
  };
}

function unmount(path: string): void {
  try {
    execFileSync('umount', [path], { stdio: 'ignore' });
  } catch {
    // A busy mount (a child still in it) goes lazily rather than being left behind.
    execFileSync('umount', ['-l', path], { stdio: 'ignore' });
  }
}
