// The event sink over real gRPC (grpc-js server; the simulated machine speaks h2c gRPC from its own
// loopback address), driving host conditions from the Talos event sequence.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import { INSTALL_CONDITIONS } from '../../../src/controllers/baremetalhost/hooks.ts';
import { EventKind } from '../../../src/runtime/events.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import {
  configRejectedEvents,
  diskBootEvents,
  fetchConfig,
  installFinishEvents,
  installRunEvents,
  installStartEvents,
  type SimEvent,
  SimulatedTalosMachine,
  talosArgs,
} from '../../../src/sim/talos-events.ts';
import { MemoryStore } from '../../../src/stores/memory.ts';
import { PUBLISH_PATH, peerAddress } from '../../../src/talos/eventsink.ts';
import { encodeEventRequest, RESTART_KEXEC } from '../../../src/talos/install-events.ts';
import { talosProtoRoot } from '../../../src/talos/proto/load.ts';
import { NAMESPACE } from '../../fixtures/talos/store.ts';
import { type Harness, startHarness } from './harness.ts';

type Cond = { type: string; status: string; reason: string; message: string };
const cond = (h: { status?: { conditions?: Cond[] } }, type: string) =>
  h.status?.conditions?.find((c) => c.type === type);

/** Provisioning with a fetched config: the host is known to the sink by `address`. */
async function fetched(h: Harness, name: string, address: string): Promise<SimulatedTalosMachine> {
  await h.setState(name, 'provisioning', 1);
  const args = await h.talos.hooks.installArgs(await h.host(name), 1);
  await h.cached(name, (x) => x.status?.talos?.tokenAttempt === 1);
  const { configURL, eventSink } = talosArgs(args);
  assert.equal((await fetchConfig(configURL!, { localAddress: address })).status, 200);
  await h.cached(name, (x) => x.status?.talos?.configFetchedFrom === address);
  return new SimulatedTalosMachine({ sink: eventSink!, localAddress: address });
}

async function counter(h: Harness, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await h.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + Number(v.value), 0);
}

async function reasons(h: Harness, host: string): Promise<string[]> {
  await h.events.flush();
  const events = await h.store.list<
    Resource & { involvedObject: { name: string }; reason: string; count: number }
  >(EventKind, {
    namespace: NAMESPACE,
  });
  return events.items
    .filter((e) => e.involvedObject.name === host)
    .flatMap((e) => Array(e.count).fill(e.reason));
}

/** `events` with every AddressEvent reporting `addresses`. */
const reporting = (events: SimEvent[], addresses: string[]): SimEvent[] =>
  events.map((e) => (e.type === 'AddressEvent' ? { ...e, body: { ...e.body, addresses } } : e));

async function withStaticAddress(h: Harness, name: string, cidr: string): Promise<void> {
  const { HOST_KIND } = await import('../../../src/talos/kinds.ts');
  const host = await h.host(name);
  await h.store.update(HOST_KIND, {
    ...host,
    spec: { ...host.spec, network: { ...host.spec.network!, addresses: [cidr] } },
  });
  await h.render();
}

test('peer strings of grpc-js become plain addresses', () => {
  assert.equal(peerAddress('127.0.0.5:40000'), '127.0.0.5');
  assert.equal(peerAddress('::ffff:10.0.20.7:1234'), '10.0.20.7');
  assert.equal(peerAddress('[fd00::7]:50000'), 'fd00::7');
  assert.equal(peerAddress('ipv4:10.0.0.1:9'), '10.0.0.1');
});

test('the full success sequence: installing, then Installed only with the kexec, then BootedFromDisk and Ready', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const machine = await fetched(h, 'cp-01', '127.0.0.51');
  t.after(() => machine.close());
  const run = installRunEvents('talos-cp-01', '127.0.0.51');
  const kexecAt = run.findIndex(
    (e) => e.type === 'PhaseEvent' && e.body.phase === 'kexec' && e.body.action === 'START',
  );
  const installAt = run.findIndex((e) => e.type === 'PhaseEvent' && e.body.phase === 'install');
  await machine.publishAll(run.slice(0, installAt));
  assert.equal(
    cond(await h.host('cp-01'), INSTALL_CONDITIONS.installed),
    undefined,
    'nothing before the install phase',
  );
  await machine.publishAll(run.slice(installAt, kexecAt));
  let host = await h.host('cp-01');
  assert.deepEqual(
    [cond(host, INSTALL_CONDITIONS.installed)?.status, cond(host, INSTALL_CONDITIONS.installed)?.reason],
    ['False', 'Installing'],
  );
  assert.equal(host.status?.lastObservedBoot?.phase, 'installing');
  await machine.publishAll(run.slice(kexecAt));
  host = await h.host('cp-01');
  assert.equal(cond(host, INSTALL_CONDITIONS.installed)?.status, 'True');
  assert.equal(host.status?.lastObservedBoot?.phase, 'installed');
  assert.equal(cond(host, INSTALL_CONDITIONS.bootedFromDisk), undefined);

  // After the kexec the machine runs its static address (the rendered VLAN 20 address here).
  const disk = new SimulatedTalosMachine({ sink: h.talos.eventSinkAddress, localAddress: '127.0.0.51' });
  t.after(() => disk.close());
  await disk.publishAll(diskBootEvents());
  host = await h.host('cp-01');
  assert.equal(cond(host, INSTALL_CONDITIONS.bootedFromDisk)?.status, 'True');
  assert.equal(cond(host, INSTALL_CONDITIONS.ready)?.status, 'True');
  assert.equal(host.status?.lastObservedBoot?.phase, 'booted');
  assert.deepEqual(
    (await reasons(h, 'cp-01')).filter((r) =>
      ['Installing', 'Installed', 'BootedFromDisk', 'Ready'].includes(r),
    ),
    ['Installing', 'Installed', 'BootedFromDisk', 'Ready'],
  );
});

test('once installed, events from the host’s static address (its rendered network) are matched to it', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  await withStaticAddress(h, 'cp-02', '127.0.0.62/8');
  const pxe = await fetched(h, 'cp-02', '127.0.0.56');
  t.after(() => pxe.close());
  // The installer brings up the rendered network and reports both addresses from its fetch address.
  await pxe.publishAll(
    reporting(installRunEvents('talos-cp-02', '127.0.0.56'), ['127.0.0.56', '127.0.0.62']),
  );
  await h.cached('cp-02', (x) => x.status?.talos?.reportedAddresses?.includes('127.0.0.62') === true);
  const installed = new SimulatedTalosMachine({ sink: h.talos.eventSinkAddress, localAddress: '127.0.0.62' });
  t.after(() => installed.close());
  await installed.publishAll(diskBootEvents());
  const host = await h.host('cp-02');
  assert.equal(cond(host, INSTALL_CONDITIONS.bootedFromDisk)?.status, 'True');
  assert.equal(cond(host, INSTALL_CONDITIONS.ready)?.status, 'True');
  assert.equal(h.talos.eventSink.match('127.0.0.63'), undefined);
});

test('mid-install, events from the host’s static address (it is in Git) are ignored and counted until the machine reports it', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  await withStaticAddress(h, 'cp-03', '127.0.0.67/8');
  const pxe = await fetched(h, 'cp-03', '127.0.0.57');
  t.after(() => pxe.close());
  await pxe.publishAll(installStartEvents('talos-cp-03', '127.0.0.57'));
  const before = await h.host('cp-03');
  assert.equal(cond(before, INSTALL_CONDITIONS.installed)?.reason, 'Installing');

  // Another box using cp-03's static address claims the install finished and the disk booted.
  const spoof = new SimulatedTalosMachine({ sink: h.talos.eventSinkAddress, localAddress: '127.0.0.67' });
  t.after(() => spoof.close());
  const forged = [...installFinishEvents(), ...diskBootEvents()];
  await spoof.publishAll(forged);
  const after = await h.host('cp-03');
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'the host is unchanged');
  assert.equal(cond(after, INSTALL_CONDITIONS.installed)?.status, 'False');
  assert.equal(cond(after, INSTALL_CONDITIONS.bootedFromDisk), undefined);
  assert.equal(h.talos.eventSink.match('127.0.0.67'), undefined);
  assert.equal(
    await counter(h, 'metalbox_talos_events_unmatched_total', { reason: 'unconfirmed-static-address' }),
    forged.length,
  );
  assert.ok(h.logs.some((l) => l.includes('static address the machine has not reported')));

  // An address event from the fetch address naming another address is no confirmation of it.
  await pxe.publish({ type: 'AddressEvent', body: { hostname: 'talos-cp-03', addresses: ['127.0.0.99'] } });
  assert.equal((await h.host('cp-03')).status?.talos?.reportedAddresses, undefined);
  // The machine itself reports the static address: from then on it speaks for cp-03.
  await pxe.publish({
    type: 'AddressEvent',
    body: { hostname: 'talos-cp-03', addresses: ['127.0.0.57', '127.0.0.67/8'] },
  });
  assert.deepEqual((await h.host('cp-03')).status?.talos?.reportedAddresses, ['127.0.0.67']);
  await h.cached('cp-03', (x) => x.status?.talos?.reportedAddresses?.length === 1);
  assert.deepEqual(h.talos.eventSink.match('127.0.0.67'), { namespace: NAMESPACE, name: 'cp-03' });
});

test('a host that booted from disk is heard on its static addresses, and a new attempt forgets reported ones', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  await withStaticAddress(h, 'worker-01', '127.0.0.68/8');
  const pxe = await fetched(h, 'worker-01', '127.0.0.58');
  t.after(() => pxe.close());
  // Same DHCP lease after the kexec: the disk boot is reported from the fetch address.
  await pxe.publishAll([
    ...installRunEvents('talos-worker-01', '127.0.0.58'),
    ...diskBootEvents().slice(0, 1),
  ]);
  await h.cached('worker-01', (x) => cond(x, INSTALL_CONDITIONS.bootedFromDisk)?.status === 'True');
  assert.deepEqual(h.talos.eventSink.match('127.0.0.68'), { namespace: NAMESPACE, name: 'worker-01' });

  const { HOST_KIND } = await import('../../../src/talos/kinds.ts');
  await h.store.patchStatus(
    HOST_KIND,
    { namespace: NAMESPACE, name: 'worker-01' },
    { talos: { reportedAddresses: ['127.0.0.68'] } },
  );
  await h.talos.hooks.installArgs(await h.host('worker-01'), 2);
  assert.equal((await h.host('worker-01')).status?.talos?.reportedAddresses, undefined);
});

test('a flood of status-changing events from a host’s own address is written at most once a second per host', async (t) => {
  const writes: number[] = [];
  /** Counts cp-01's status writes: the only thing this MemoryStore adds. */
  class CountingStore extends MemoryStore {
    override async patchStatus<T extends Resource>(
      ...args: Parameters<MemoryStore['patchStatus']>
    ): Promise<T> {
      const [kind, ref] = args;
      if (kind.kind === 'BareMetalHost' && ref.name === 'cp-01') writes.push(Date.now());
      return super.patchStatus<T>(...args);
    }
  }
  const h = await startHarness({ store: new CountingStore() });
  t.after(() => h.close());
  const machine = await fetched(h, 'cp-01', '127.0.0.71');
  t.after(() => machine.close());
  const running = (ready: boolean, i: number): SimEvent => ({
    type: 'MachineStatusEvent',
    body: {
      stage: 'RUNNING',
      status: { ready, unmet_conditions: ready ? [] : [{ name: 'n', reason: `r${i}` }] },
    },
  });
  const from = writes.length;
  const started = Date.now();
  // 3,000 events that each change the Ready condition, 500 at a time on one connection.
  for (let wave = 0; wave < 6; wave++) {
    const codes = await Promise.all(
      Array.from({ length: 500 }, (_, i) => machine.publish(running(i % 2 === 0, wave * 500 + i))),
    );
    assert.ok(codes.every((c) => c === 0));
  }
  await machine.publish(running(true, -1));
  const elapsed = Date.now() - started;
  const flood = writes.slice(from);
  assert.ok(flood.length <= Math.ceil(elapsed / 1000) + 1, `${flood.length} writes in ${elapsed} ms`);
  for (let i = 1; i < flood.length; i++)
    assert.ok(flood[i]! - flood[i - 1]! >= 950, `writes ${flood[i]! - flood[i - 1]!} ms apart`);
  assert.equal(cond(await h.host('cp-01'), INSTALL_CONDITIONS.ready)?.status, 'True', 'the last event holds');
});

test('what the sink keeps per host goes with the host', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const machine = await fetched(h, 'worker-02', '127.0.0.72');
  t.after(() => machine.close());
  await machine.publishAll(installStartEvents('talos-worker-02', '127.0.0.72'));
  assert.equal(h.talos.eventSink.tracked, 1);
  const { HOST_KIND } = await import('../../../src/talos/kinds.ts');
  const host = await h.host('worker-02');
  await h.store.update(HOST_KIND, { ...host, metadata: { ...host.metadata, finalizers: [] } });
  await h.store.delete(HOST_KIND, { namespace: NAMESPACE, name: 'worker-02' });
  await waitUntil(() => h.talos.hosts.get({ namespace: NAMESPACE, name: 'worker-02' }) === undefined);
  // The next event (from anywhere) finds the host gone.
  await machine.publish({ type: 'PhaseEvent', body: { phase: 'install', action: 'STOP' } });
  assert.equal(h.talos.eventSink.tracked, 0);
});

async function waitUntil(test: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!test()) {
    assert.ok(Date.now() < deadline, 'condition never held');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a config validation error puts InstallFailed with Talos’s message', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const machine = await fetched(h, 'worker-01', '127.0.0.52');
  t.after(() => machine.close());
  await machine.publishAll(
    configRejectedEvents('1 error occurred:\n\t* install disk or diskSelector should be defined'),
  );
  const host = await h.host('worker-01');
  const failed = cond(host, INSTALL_CONDITIONS.installFailed);
  assert.equal(failed?.status, 'True');
  assert.equal(failed?.reason, 'ConfigValidationError');
  assert.equal(failed?.message, '1 error occurred:\n\t* install disk or diskSelector should be defined');
  assert.equal(cond(host, INSTALL_CONDITIONS.installed), undefined);
  assert.ok((await reasons(h, 'worker-01')).includes('InstallFailed'));
});

test('an install sequence that fails (FATAL without unix.Reboot) is InstallFailed, and a later kexec does not make it Installed', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const machine = await fetched(h, 'worker-02', '127.0.0.53');
  t.after(() => machine.close());
  await machine.publishAll([
    { type: 'SequenceEvent', body: { sequence: 'install', action: 'START' } },
    { type: 'PhaseEvent', body: { phase: 'install', action: 'START' } },
    {
      type: 'SequenceEvent',
      body: {
        sequence: 'install',
        action: 'NOOP',
        error: { code: 'FATAL', message: 'failed to install: disk /dev/sda not found' },
      },
    },
    { type: 'RestartEvent', body: { cmd: 0x01234567 } },
  ]);
  const host = await h.host('worker-02');
  assert.equal(
    cond(host, INSTALL_CONDITIONS.installFailed)?.message,
    'failed to install: disk /dev/sda not found',
  );
  assert.equal(cond(host, INSTALL_CONDITIONS.installed)?.status, 'False');
});

test('events from an address that fetched no config are ignored and counted', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  await fetched(h, 'cp-02', '127.0.0.54');
  const before = await h.host('cp-02');
  const stranger = new SimulatedTalosMachine({ sink: h.talos.eventSinkAddress, localAddress: '127.0.0.99' });
  t.after(() => stranger.close());
  const run = installRunEvents('stranger', '127.0.0.99');
  await stranger.publishAll(run);
  assert.equal(await counter(h, 'metalbox_talos_events_unmatched_total'), run.length);
  const after = await h.host('cp-02');
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'no host changed');
  assert.equal(cond(after, INSTALL_CONDITIONS.installed), undefined);
});

test('duplicate events (same id, resent) are idempotent', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const machine = await fetched(h, 'cp-03', '127.0.0.55');
  t.after(() => machine.close());
  await machine.publish({ type: 'PhaseEvent', body: { phase: 'install', action: 'START' } }, 'id-install');
  const restart = { type: 'RestartEvent' as const, body: { cmd: RESTART_KEXEC } };
  assert.equal(await machine.publish(restart, 'id-restart'), 0);
  const once = await h.host('cp-03');
  assert.equal(await machine.publish(restart, 'id-restart'), 0, 'a resent event is acknowledged');
  assert.equal(
    await machine.publish({ type: 'PhaseEvent', body: { phase: 'install', action: 'START' } }, 'id-install'),
    0,
  );
  // The same signal under a new id (Talos replaying its buffer after a reconnect) changes nothing either.
  assert.equal(await machine.publish(restart, 'id-restart-2'), 0);
  const again = await h.host('cp-03');
  assert.equal(again.metadata.resourceVersion, once.metadata.resourceVersion);
  assert.equal(cond(again, INSTALL_CONDITIONS.installed)?.status, 'True');
  assert.deepEqual(
    (await reasons(h, 'cp-03')).filter((r) => r === 'Installed'),
    ['Installed'],
  );
});

test('a stock grpc-js client can publish too (interop), and unknown payload types are acknowledged', async (t) => {
  const h = await startHarness();
  t.after(() => h.close());
  const Client = makeGenericClientConstructor(
    {
      Publish: {
        path: PUBLISH_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    'EventSinkService',
  );
  const client = new Client(h.talos.eventSinkAddress, credentials.createInsecure());
  t.after(() => client.close());
  const call = (bytes: Uint8Array) =>
    new Promise<void>((resolve, reject) =>
      (client as unknown as { Publish: (b: Buffer, cb: (e: Error | null) => void) => void }).Publish(
        Buffer.from(bytes),
        (e) => (e ? reject(e) : resolve()),
      ),
    );
  await call(encodeEventRequest('x1', 'AddressEvent', { hostname: 'h', addresses: ['127.0.0.1'] }));
  const request = talosProtoRoot().lookupType('events.EventRequest');
  const unknown = request.encode(
    request.fromObject({
      id: 'x2',
      data: { type_url: 'type.googleapis.com/machine.FutureEvent', value: Buffer.from([8, 1]) },
    }),
  );
  await call(unknown.finish());
  const byType = (await h.registry.getMetricsAsJSON()).find(
    (m) => m.name === 'metalbox_talos_events_total',
  )!.values;
  assert.deepEqual(
    byType.map((v) => [v.labels.type, v.value]),
    [
      ['AddressEvent', 1],
      ['unknown', 1],
    ],
  );
});
