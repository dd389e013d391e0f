// Leader election through etcd between standalone replicas: a SIGKILLed leader (a real process)
// is replaced within 20 s; a leader cut off from etcd stops before anyone else starts, so two
// managers never run a host's power action at the same time; release hands over at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import type { ControllerSpec } from '../../../src/runtime/controller.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { connectEtcd, type EtcdConnection } from '../../../src/stores/etcd-client.ts';
import { EtcdElector } from '../../../src/stores/etcd-leader.ts';
import { Widget, type WidgetObject } from '../../conformance/kinds.ts';
import { type EtcdCluster, type EtcdPeer, startEtcd, startEtcdCluster } from '../../env/etcd.ts';
import { peerBinary, scratchDir } from '../../env/peers.ts';
import { startProcess } from '../../env/process.ts';
import { waitFor } from '../../env/wait.ts';

let etcd: EtcdPeer;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
before(async () => {
  etcd = await startEtcd({ name: 'etcd-leader' });
});
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await etcd?.stop();
});

interface Candidate {
  elector: EtcdElector;
  connection: EtcdConnection;
  startedAt?: number;
  stoppedAt?: number;
  reason?: string;
  done: Promise<void>;
}

function candidate(hosts: string[], identity: string, name: string): Candidate {
  const connection = connectEtcd({ hosts });
  const elector = new EtcdElector({ client: connection.client, identity, name });
  const c: Candidate = { elector, connection, done: Promise.resolve() };
  c.done = elector.run(
    () => {
      c.startedAt = Date.now();
    },
    (reason) => {
      c.stoppedAt = Date.now();
      c.reason = reason;
    },
  );
  cleanups.push(async () => {
    await elector.release();
    connection.close();
  });
  return c;
}

test('a SIGKILLed leader process is replaced by the standby within 20 s', async (t) => {
  const scratch = scratchDir('elector-child');
  cleanups.push(() => scratch.remove());
  const child = startProcess({
    name: 'elector-a',
    command: peerBinary('node'),
    args: [
      fileURLToPath(new URL('./fixtures/elector-child.ts', import.meta.url)),
      etcd.endpoint,
      'replica-a',
    ],
    logDir: scratch.dir,
  });
  cleanups.push(() => child.kill());
  await waitFor(async () => child.tail().includes('LEADING'), {
    what: 'the child replica leads',
    timeoutMs: 20_000,
    context: () => child.tail(),
  });
  const b = candidate([etcd.endpoint], 'replica-b', 'controller');
  await sleep(3000);
  assert.equal(b.elector.leading, false, 'the standby must not lead while the leader renews');
  const killedAt = Date.now();
  await child.kill();
  await waitFor(async () => b.elector.leading, {
    what: 'the standby leads',
    timeoutMs: 25_000,
    intervalMs: 100,
  });
  const takeover = Date.now() - killedAt;
  assert.ok(takeover < 20_000, `takeover took ${takeover} ms`);
  t.diagnostic(`takeover after SIGKILL: ${takeover} ms`);
});

test('release hands leadership to the standby at once', async () => {
  const a = candidate([etcd.endpoint], 'replica-a', 'release');
  await waitFor(async () => a.elector.leading, { what: 'a leads', timeoutMs: 10_000 });
  const b = candidate([etcd.endpoint], 'replica-b', 'release');
  await sleep(1000);
  assert.equal(b.elector.leading, false);
  const releasedAt = Date.now();
  await a.elector.release();
  assert.equal(a.reason, 'released');
  await waitFor(async () => b.elector.leading, { what: 'b leads', timeoutMs: 10_000, intervalMs: 50 });
  assert.ok(Date.now() - releasedAt < 5000, `handover took ${Date.now() - releasedAt} ms`);
});

test('a leader cut off from etcd stops reconciling before the standby starts: no concurrent power actions', async () => {
  const cluster: EtcdCluster = await startEtcdCluster(3, { name: 'etcd-leader-cluster' });
  cleanups.push(() => cluster.stop());
  const [m0, m1, m2] = cluster.members as [
    (typeof cluster.members)[0],
    (typeof cluster.members)[0],
    (typeof cluster.members)[0],
  ];
  const admin = new EtcdStore({ hosts: [m1.endpoint, m2.endpoint], prefix: '/leader-test' });
  cleanups.push(() => admin.close());
  for (const name of ['host-a', 'host-b', 'host-c']) {
    await admin.create<WidgetObject>(Widget, {
      apiVersion: `${Widget.group}/${Widget.version}`,
      kind: Widget.kind,
      metadata: { namespace: 'default', name },
      spec: { size: 1 },
    });
  }
  // A "power action" per host key; both replicas share this bookkeeping.
  const inFlight = new Map<string, string>();
  const overlaps: string[] = [];
  const actions: { who: string; at: number }[] = [];
  const replica = (who: string, hosts: string[]) => {
    const store = new EtcdStore({ hosts, prefix: '/leader-test' });
    const elector = new EtcdElector({ client: store.client, identity: who, prefix: '/leader-test' });
    const transitions: { leading: boolean; at: number; reason?: string }[] = [];
    const observed: EtcdElector = elector;
    const wrapped = {
      identity: who,
      run: (start: () => void, stop: (reason?: string) => void) =>
        observed.run(
          () => {
            transitions.push({ leading: true, at: Date.now() });
            start();
          },
          (reason) => {
            transitions.push({ leading: false, at: Date.now(), reason });
            stop(reason);
          },
        ),
      release: () => observed.release(),
    };
    const spec: ControllerSpec = {
      name: 'power',
      for: Widget,
      workers: 3,
      reconcile: async (req, ctx) => {
        const holder = inFlight.get(req.key);
        if (holder) overlaps.push(`${who} started ${req.key} while ${holder} was powering it`);
        inFlight.set(req.key, who);
        actions.push({ who, at: Date.now() });
        try {
          await sleep(200, undefined, { signal: ctx.signal }).catch(() => {});
        } finally {
          inFlight.delete(req.key);
        }
        return { requeueAfter: 20 };
      },
    };
    const manager = new Manager({ store, registry: new Registry(), elector: wrapped });
    manager.add(spec);
    cleanups.push(async () => {
      await manager.stop();
      await store.close();
    });
    return { manager, transitions };
  };
  // a only knows m0; b only m1 and m2.
  const a = replica('replica-a', [m0.endpoint]);
  await a.manager.start();
  await waitFor(async () => a.manager.leading && actions.length > 0, {
    what: 'a reconciles',
    timeoutMs: 20_000,
  });
  const b = replica('replica-b', [m1.endpoint, m2.endpoint]);
  await b.manager.start();
  await sleep(2000);
  assert.equal(b.manager.leading, false);
  m0.freeze();
  cleanups.push(() => m0.thaw());
  await waitFor(async () => b.manager.leading && actions.some((x) => x.who === 'replica-b'), {
    what: 'b takes over and reconciles',
    timeoutMs: 40_000,
    intervalMs: 100,
  });
  m0.thaw();
  const aStopped = a.transitions.find((t) => !t.leading);
  const bStarted = b.transitions.find((t) => t.leading);
  assert.ok(aStopped && bStarted);
  assert.match(aStopped.reason ?? '', /could not renew/);
  assert.ok(aStopped.at < bStarted.at, `a stopped at ${aStopped.at}, b started at ${bStarted.at}`);
  assert.ok(
    actions.filter((x) => x.who === 'replica-a').every((x) => x.at < bStarted.at),
    'a ran no action after b started',
  );
  assert.deepEqual(overlaps, []);
  assert.equal((await a.manager.done).reason, 'leadership-lost');
});
