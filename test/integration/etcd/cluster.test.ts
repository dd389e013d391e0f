// A three-member etcd on loopback (mgmt-01, mgmt-02 and the witness, in miniature): losing one
// member is invisible to writers and controllers; losing two makes writes fail with a clear
// no-quorum error until a member returns; a watch that falls behind a compaction is Gone and the
// informer relists and converges.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';
import { formatError } from '../../../src/cli/store-command.ts';
import { isConflict } from '../../../src/runtime/errors.ts';
import { Informer } from '../../../src/runtime/informer.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { EtcdUnavailableError } from '../../../src/stores/etcd-client.ts';
import { Widget, type WidgetObject } from '../../conformance/kinds.ts';
import { type EtcdCluster, type EtcdMember, startEtcdCluster } from '../../env/etcd.ts';
import { waitFor } from '../../env/wait.ts';

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => {});
});

async function cluster(name: string): Promise<EtcdCluster> {
  const c = await startEtcdCluster(3, { name });
  cleanups.push(() => c.stop());
  return c;
}

function store(hosts: string[], options: { requestTimeoutMs?: number } = {}): EtcdStore {
  const s = new EtcdStore({ hosts, prefix: '/cluster-test', ...options });
  cleanups.push(() => s.close());
  return s;
}

function widget(name: string, size = 1): WidgetObject {
  return {
    apiVersion: `${Widget.group}/${Widget.version}`,
    kind: Widget.kind,
    metadata: { namespace: 'default', name },
    spec: { size },
  };
}

/** The member that is the raft leader now. */
async function raftLeader(c: EtcdCluster): Promise<EtcdMember> {
  for (const m of c.members.filter((x) => x.isRunning())) {
    const client = new Etcd3({ hosts: m.endpoint });
    try {
      const status = await client.maintenance.status({});
      if (status.leader === status.header.member_id) return m;
    } finally {
      client.close();
    }
  }
  throw new Error('no member says it leads');
}

test('killing one of three members (the raft leader) during writes and reconciles: no error, nothing lost', async (t) => {
  const c = await cluster('etcd-kill-one');
  const s = store(c.endpoints);
  // A controller that records each widget's size in its status, as a real one records state.
  const reconcileErrors: string[] = [];
  const manager = new Manager({ store: s, registry: new Registry() });
  manager.add({
    name: 'observe',
    for: Widget,
    workers: 2,
    reconcile: async (req) => {
      try {
        const w = await s.get<WidgetObject>(Widget, req);
        if (w.status?.observedGeneration === w.metadata.generation) return;
        await s.updateStatus(Widget, {
          ...w,
          status: { observedGeneration: w.metadata.generation, detail: { a: w.spec?.size } },
        });
      } catch (error) {
        if (!isConflict(error)) reconcileErrors.push(String(error));
        throw error;
      }
    },
  });
  cleanups.push(() => manager.stop());
  await manager.start();

  const writeErrors: string[] = [];
  const N = 40;
  let killedAt = 0;
  for (let i = 0; i < N; i++) {
    if (i === 15) {
      const leader = await raftLeader(c);
      killedAt = Date.now();
      await leader.kill();
      t.diagnostic(`killed ${leader.name} (raft leader) after ${i} creates`);
    }
    try {
      const created = await s.create<WidgetObject>(Widget, widget(`w-${i}`));
      // Update right away: the controller races us, so retry a conflict as any writer would.
      for (let attempt = 0; ; attempt++) {
        try {
          const current =
            attempt === 0
              ? created
              : await s.get<WidgetObject>(Widget, { namespace: 'default', name: `w-${i}` });
          await s.update(Widget, { ...current, spec: { size: 2 } });
          break;
        } catch (error) {
          if (!isConflict(error) || attempt > 10) throw error;
        }
      }
    } catch (error) {
      writeErrors.push(`w-${i}: ${String(error)}`);
    }
  }
  t.diagnostic(`writes after the kill took ${Date.now() - killedAt} ms`);
  assert.deepEqual(writeErrors, []);
  const { items } = await s.list<WidgetObject>(Widget, { namespace: 'default' });
  assert.equal(items.length, N);
  assert.ok(items.every((w) => w.spec?.size === 2 && w.metadata.generation === 2));
  await waitFor(
    async () => {
      const list = await s.list<WidgetObject>(Widget, { namespace: 'default' });
      return list.items.every((w) => w.status?.observedGeneration === 2 && w.status.detail?.a === 2);
    },
    { what: 'every widget reconciled', timeoutMs: 30_000 },
  );
  assert.deepEqual(reconcileErrors, []);
  assert.equal(manager.informer(Widget).list().length, N);
});

test('with two of three members down writes fail with a clear no-quorum error, and work again when one returns', async () => {
  const c = await cluster('etcd-kill-two');
  const s = store(c.endpoints, { requestTimeoutMs: 6000 });
  await s.create(Widget, widget('before'));
  const [m0, m1] = c.members as [EtcdMember, EtcdMember];
  await m0.kill();
  await m1.kill();
  await sleep(3000); // the survivor notices it has lost its leader after an election timeout or two
  const err = await s.create(Widget, widget('during')).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof EtcdUnavailableError, `expected EtcdUnavailableError, got ${String(err)}`);
  assert.equal(err.reason, 'NoQuorum', err.message);
  assert.match(err.message, /create Widget default\/during: etcd has no quorum \(no leader\)/);
  assert.match(formatError(err), /^Error from store \(ServiceUnavailable\): .*etcd has no quorum/);
  await assert.rejects(s.get(Widget, { namespace: 'default', name: 'before' }), EtcdUnavailableError);

  await m1.restart();
  const recovered = await waitFor(
    async () =>
      s.create<WidgetObject>(Widget, widget('after')).catch((e: unknown) => {
        if (e instanceof EtcdUnavailableError) return undefined;
        throw e;
      }),
    { what: 'writes to work again', timeoutMs: 30_000, intervalMs: 200 },
  );
  assert.ok(recovered.metadata.resourceVersion);
  const names = (await s.list(Widget, { namespace: 'default' })).items.map((w) => w.metadata.name).sort();
  assert.deepEqual(names, ['after', 'before'], 'the failed write left nothing behind');
});

test('a watch that falls behind a compaction is Gone; the informer relists and converges', async () => {
  const c = await cluster('etcd-compaction');
  const [m0, m1, m2] = c.members as [EtcdMember, EtcdMember, EtcdMember];
  const writer = store([m1.endpoint, m2.endpoint]);
  for (const name of ['keep', 'change', 'remove']) await writer.create(Widget, widget(name));
  // The informer reaches etcd only through m0.
  const reader = store([m0.endpoint]);
  const informer = new Informer<WidgetObject>(reader, Widget, { namespace: 'default', resyncMs: 0 });
  const relists: string[] = [];
  informer.on('relist', ({ reason }) => relists.push(reason));
  informer.start();
  cleanups.push(() => informer.stop());
  await informer.waitForSync();
  assert.equal(informer.list().length, 3);

  await m0.kill();
  const changed = await writer.get<WidgetObject>(Widget, { namespace: 'default', name: 'change' });
  await writer.update(Widget, { ...changed, spec: { size: 5 } });
  await writer.delete(Widget, { namespace: 'default', name: 'remove' });
  await writer.create(Widget, widget('added'));
  await writer.compact();
  await m0.restart();

  await waitFor(
    async () => {
      const names = informer
        .list()
        .map((w) => w.metadata.name)
        .sort();
      return (
        names.join(',') === 'added,change,keep' &&
        informer.get({ namespace: 'default', name: 'change' })?.spec?.size === 5
      );
    },
    { what: 'the informer to converge', timeoutMs: 30_000, intervalMs: 100 },
  );
  assert.ok(relists.includes('gone'), `relists: ${relists.join(', ')}`);
  const truth = await writer.list<WidgetObject>(Widget, { namespace: 'default' });
  assert.deepEqual(
    informer
      .list()
      .map((w) => `${w.metadata.name}@${w.metadata.resourceVersion}`)
      .sort(),
    truth.items.map((w) => `${w.metadata.name}@${w.metadata.resourceVersion}`).sort(),
  );
});
