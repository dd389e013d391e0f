// The host state machine's table, its generated docs, and the dispatcher's fixed behaviour, on the
// memory store (no BMC is reached in these tests: each case stops before any BMC call).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { mergeArgs } from '../../src/controllers/baremetalhost/children.ts';
import { parseHostControllerConfig } from '../../src/controllers/baremetalhost/config.ts';
import { next } from '../../src/controllers/baremetalhost/context.ts';
import { buildHostController, provideProvisioningHooks } from '../../src/controllers/baremetalhost/family.ts';
import { resolveBootMac } from '../../src/controllers/baremetalhost/handlers/inspecting.ts';
import { findConflicts } from '../../src/controllers/baremetalhost/identity.ts';
import {
  GROUP_KIND,
  HOST_KIND,
  PROFILE_KIND,
  SECRET_KIND,
} from '../../src/controllers/baremetalhost/kinds.ts';
import { parseRebootRequest } from '../../src/controllers/baremetalhost/power.ts';
import { renderStateDocs } from '../../src/controllers/baremetalhost/state-docs.ts';
import {
  CHECKS,
  HANDLERS,
  isAllowed,
  RefusedTransitionError,
  reconcileHost,
  TRANSITIONS,
} from '../../src/controllers/baremetalhost/states.ts';
import {
  type BareMetalHost,
  BMH_ANNOTATIONS,
  BMH_FINALIZER,
  PROVISIONING_STATES,
} from '../../src/crds/baremetalhost.ts';
import type { MatchboxGroup } from '../../src/crds/matchboxgroup.ts';
import { type CoreEvent, EventKind, StoreEventRecorder } from '../../src/runtime/events.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { MemoryStore } from '../../src/stores/memory.ts';

type Host = BareMetalHost & Resource;
const NS = 'lab';

function hostObject(
  name: string,
  overrides: Partial<Host['spec']> = {},
  annotations?: Record<string, string>,
): Host {
  return {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'BareMetalHost',
    metadata: { name, namespace: NS, ...(annotations ? { annotations } : {}) },
    spec: {
      online: true,
      bootMACAddress: 'aa:bb:cc:dd:ee:01',
      bmc: {
        address: 'redfish://10.0.10.101/redfish/v1/Systems/1',
        credentialsName: `${name}-bmc`,
        disableCertificateVerification: false,
      },
      bootMode: 'UEFI',
      role: 'worker',
      profileRef: { name: 'talos' },
      bootTarget: 'install',
      powerPolicy: 'enforce',
      inspectionMode: 'bmc',
      ...overrides,
    },
  };
}

/** A host whose BMC address scheme is unsupported: registration fails without reaching a BMC. */
const unregistrableHost = (name: string) =>
  hostObject(name, {
    bmc: { address: 'libvirt://x', credentialsName: 'x', disableCertificateVerification: false },
  });

/** What the host controller is built from, on `store`, with no family config. */
const hostDeps = (store: MemoryStore, events = new StoreEventRecorder({ store, component: 'test' })) => ({
  store,
  events,
  logger: silentLogger,
  registry: new Registry(),
  namespace: NS,
  config: {},
});

async function setup() {
  const store = new MemoryStore();
  const events = new StoreEventRecorder({ store, component: 'test' });
  const config = parseHostControllerConfig({ errorBackoff: { baseSeconds: 10, capSeconds: 100 } });
  const built = buildHostController(hostDeps(store, events), config);
  await Promise.all([built.env.hosts, built.env.groups, built.env.profiles].map((i) => i.waitForSync()));
  const reconcile = (name: string, handlers = HANDLERS) =>
    reconcileHost(built.env, { namespace: NS, name }, silentLogger, handlers);
  const get = (name: string) => store.get<Host>(HOST_KIND, { namespace: NS, name });
  const eventsOf = async (name: string) => {
    await events.flush();
    return (await store.list<CoreEvent>(EventKind, { namespace: NS })).items.filter(
      (e) => e.involvedObject.name === name,
    );
  };
  const settle = () => new Promise((r) => setTimeout(r, 20));
  return {
    store,
    env: built.env,
    reconcile,
    get,
    eventsOf,
    settle,
    async close() {
      await built.stop();
      await store.close();
    },
  };
}

test('the transition table names every state, only known states, and lets every state be deleted', () => {
  assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...PROVISIONING_STATES].sort());
  for (const [from, targets] of Object.entries(TRANSITIONS)) {
    for (const to of targets) assert.ok(PROVISIONING_STATES.includes(to), `${from} → ${to}`);
    if (from !== 'deleting') assert.ok(targets.includes('deleting'), `${from} → deleting`);
  }
  assert.deepEqual(TRANSITIONS.deleting, []);
  assert.ok(isAllowed(undefined, 'registering'));
  assert.ok(!isAllowed(undefined, 'provisioned'));
  assert.ok(!isAllowed('available', 'provisioned'), 'an install never skips provisioning');
  assert.ok(
    !isAllowed('provisioned', 'provisioning'),
    'a provisioned host is deprovisioned before a reinstall',
  );
});

test('the checks run in the documented fixed order', () => {
  assert.deepEqual(
    CHECKS.map((c) => c.name),
    ['paused', 'deleting', 'detached', 'identity conflicts', 'credentials changed', 'provisioning capacity'],
  );
});

test('docs/baremetalhost-states.md is what the transition table renders (run scripts/gen-state-docs.ts)', () => {
  const file = new URL('../../docs/baremetalhost-states.md', import.meta.url);
  assert.equal(readFileSync(file, 'utf8'), renderStateDocs());
});

test('the dispatcher refuses a transition the table does not list and writes nothing', async () => {
  const t = await setup();
  try {
    await t.store.create(HOST_KIND, hostObject('h1'));
    const created = await t.get('h1');
    await t.store.updateStatus(HOST_KIND, { ...created, status: { provisioning: { state: 'available' } } });
    await t.settle();
    const before = await t.get('h1');
    const rogue = { ...HANDLERS, available: async () => next('provisioned', 'skipping the install') };
    await assert.rejects(t.reconcile('h1', rogue), RefusedTransitionError);
    const after = await t.get('h1');
    assert.equal(after.status?.provisioning?.state, 'available');
    assert.deepEqual(after.status, before.status);
  } finally {
    await t.close();
  }
});

test('a new host gets the finalizer and enters registering; a bad BMC address is a registration error naming the field, with backoff', async () => {
  const t = await setup();
  try {
    await t.store.create(
      HOST_KIND,
      hostObject('h1', {
        bmc: {
          address: 'redfish-virtualmedia://10.0.0.1',
          credentialsName: 'x',
          disableCertificateVerification: false,
        },
      }),
    );
    const first = await t.reconcile('h1');
    const host = await t.get('h1');
    assert.deepEqual(host.metadata.finalizers, [BMH_FINALIZER]);
    assert.equal(host.status?.provisioning?.state, 'error');
    assert.equal(host.status?.errorType, 'registration error');
    assert.match(host.status?.errorMessage ?? '', /spec\.bmc\.address/);
    assert.equal(host.status?.errorCount, 1);
    assert.equal(host.status?.operationalStatus, 'error');
    assert.ok(first.requeueAfter! >= 5_000 && first.requeueAfter! <= 10_000, `backoff ${first.requeueAfter}`);
    // Within the backoff, the error handler only waits.
    const waiting = await t.reconcile('h1');
    assert.ok(waiting.requeueAfter! > 0 && waiting.requeueAfter! <= first.requeueAfter!);
    assert.equal((await t.get('h1')).status?.errorCount, 1);
    const messages = (await t.eventsOf('h1')).map((e) => `${e.type} ${e.reason} ${e.message}`);
    assert.ok(messages.some((m) => m.startsWith('Normal Registering new → registering')));
    assert.ok(messages.some((m) => m.startsWith('Warning Error registering → error')));
  } finally {
    await t.close();
  }
});

test('the error backoff is in status (errorRetryAt), so a restarted controller still waits it out', async () => {
  const t = await setup();
  try {
    await t.store.create(HOST_KIND, unregistrableHost('h1'));
    const before = Date.now();
    const first = await t.reconcile('h1');
    const retryAt = Date.parse((await t.get('h1')).status?.errorRetryAt ?? '');
    // Second precision: the recorded time is at most 1 s before the in-memory deadline.
    const due = before + first.requeueAfter!;
    assert.ok(retryAt <= due && retryAt >= due - 2_000, `errorRetryAt ${retryAt} vs ${due}`);
    // A restart loses the in-memory backoff; the reconcile must still wait, not retry at once.
    t.env.retries.clear();
    const waiting = await t.reconcile('h1');
    assert.equal((await t.get('h1')).status?.provisioning?.state, 'error');
    assert.ok(waiting.requeueAfter! > 0 && waiting.requeueAfter! <= first.requeueAfter!);
    // Once the time has passed (as recorded in status), the operation is retried.
    const h = await t.get('h1');
    await t.store.patchStatus(
      HOST_KIND,
      { namespace: NS, name: 'h1' },
      {
        errorRetryAt: new Date(Date.now() - 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    );
    t.env.retries.clear();
    assert.equal(h.status?.errorCount, 1);
    await t.reconcile('h1');
    assert.equal((await t.get('h1')).status?.provisioning?.state, 'registering');
  } finally {
    await t.close();
  }
});

test('a spec change ends the error backoff at once, and the error count grows on each failure', async () => {
  const t = await setup();
  try {
    await t.store.create(HOST_KIND, unregistrableHost('h1'));
    await t.reconcile('h1');
    await t.settle();
    const h = await t.get('h1');
    h.spec.description = 'touched';
    await t.store.update(HOST_KIND, h);
    await t.reconcile('h1'); // error → registering (the inputs changed)
    assert.equal((await t.get('h1')).status?.provisioning?.state, 'registering');
    const again = await t.reconcile('h1'); // registering fails again
    const host = await t.get('h1');
    assert.equal(host.status?.provisioning?.state, 'error');
    assert.equal(host.status?.errorCount, 2);
    assert.ok(
      again.requeueAfter! >= 10_000 && again.requeueAfter! <= 20_000,
      `backoff ${again.requeueAfter}`,
    );
  } finally {
    await t.close();
  }
});

test('a paused host is neither changed nor written', async () => {
  const t = await setup();
  try {
    await t.store.create(HOST_KIND, hostObject('h1', {}, { [BMH_ANNOTATIONS.paused]: '' }));
    const before = await t.get('h1');
    assert.deepEqual(await t.reconcile('h1'), {});
    const after = await t.get('h1');
    assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
    assert.equal(after.status, undefined);
  } finally {
    await t.close();
  }
});

test('a detached host reports operationalStatus detached and is not driven', async () => {
  const t = await setup();
  try {
    await t.store.create(HOST_KIND, hostObject('h1', {}, { [BMH_ANNOTATIONS.detached]: 'true' }));
    assert.deepEqual(await t.reconcile('h1'), {});
    const host = await t.get('h1');
    assert.equal(host.status?.operationalStatus, 'detached');
    assert.equal(host.status?.provisioning?.state, 'registering');
    assert.equal(host.status?.goodCredentials, undefined, 'the BMC was not asked anything');
  } finally {
    await t.close();
  }
});

test('two hosts with the same boot MAC both get Conflict=True and stay where they are', async () => {
  const t = await setup();
  try {
    await t.store.create(HOST_KIND, hostObject('h1'));
    await t.store.create(
      HOST_KIND,
      hostObject('h2', {
        bmc: { address: 'ipmi://10.0.10.9', credentialsName: 'x', disableCertificateVerification: false },
      }),
    );
    await t.settle();
    for (const name of ['h1', 'h2']) {
      await t.reconcile(name);
      const host = await t.get(name);
      const conflict = host.status?.conditions?.find((c) => c.type === 'Conflict');
      assert.equal(conflict?.status, 'True', name);
      assert.equal(conflict?.reason, 'DuplicateBootMACAddress');
      assert.match(conflict?.message ?? '', name === 'h1' ? /lab\/h2/ : /lab\/h1/);
      assert.equal(host.status?.provisioning?.state, 'registering');
      assert.equal(host.status?.goodCredentials, undefined);
    }
  } finally {
    await t.close();
  }
});

test('identity: same BMC system conflicts whatever the scheme spelling; other systems on one BMC do not', () => {
  const a = hostObject('a', {
    bmc: {
      address: 'redfish://10.0.0.1/redfish/v1/Systems/1',
      credentialsName: 'x',
      disableCertificateVerification: false,
    },
  });
  const b = hostObject('b', {
    bootMACAddress: 'aa:bb:cc:dd:ee:02',
    bmc: {
      address: 'redfish+https://10.0.0.1:443/redfish/v1/Systems/1',
      credentialsName: 'x',
      disableCertificateVerification: false,
    },
  });
  const c = hostObject('c', {
    bootMACAddress: 'AA-BB-CC-DD-EE-03',
    bmc: {
      address: 'redfish://10.0.0.1/redfish/v1/Systems/2',
      credentialsName: 'x',
      disableCertificateVerification: false,
    },
  });
  for (const h of [a, b, c]) h.metadata.uid = h.metadata.name;
  assert.deepEqual(
    findConflicts(a, [a, b, c], []).map((x) => x.reason),
    ['DuplicateBMCAddress'],
  );
  assert.deepEqual(findConflicts(c, [a, b, c], []), []);
  const foreign: MatchboxGroup & Resource = {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'MatchboxGroup',
    metadata: { name: 'talos-c', namespace: NS },
    spec: { profileRef: { name: 'talos' }, selector: { mac: 'aa:bb:cc:dd:ee:03' } },
  };
  assert.deepEqual(
    findConflicts(c, [a, b, c], [foreign]).map((x) => x.reason),
    ['ForeignMatchboxGroup'],
  );
  const own = {
    ...foreign,
    metadata: {
      ...foreign.metadata,
      ownerReferences: [
        { apiVersion: 'metalbox.io/v1alpha1', kind: 'BareMetalHost', name: 'c', uid: 'c', controller: true },
      ],
    },
  };
  assert.deepEqual(findConflicts(c, [a, b, c], [own]), []);
});

test('install args: a host arg replaces the profile arg with the same key, others are appended', () => {
  assert.deepEqual(
    mergeArgs(
      ['console=ttyS0', 'talos.config=http://10.0.20.5:8080/assets/controlplane.yaml', 'pti=on'],
      ['talos.config=https://cfg/x?t=1', 'metalbox.attempt=2'],
    ),
    ['console=ttyS0', 'pti=on', 'talos.config=https://cfg/x?t=1', 'metalbox.attempt=2'],
  );
});

test('the reboot annotation takes {"mode":"soft"|"hard"}; empty means soft; anything else is rejected', () => {
  assert.deepEqual(parseRebootRequest(''), { mode: 'soft' });
  assert.deepEqual(parseRebootRequest('{"mode":"hard"}'), { mode: 'hard' });
  assert.deepEqual(parseRebootRequest('{"mode":"soft"}'), { mode: 'soft' });
  assert.ok('invalid' in parseRebootRequest('{"mode":"now"}'));
  assert.ok('invalid' in parseRebootRequest('yes'));
});

test('boot MAC: the spec value is checked against the inventory; an empty spec takes the only NIC or asks', () => {
  const nics = (...macs: string[]) => ({ nics: macs.map((mac) => ({ mac, linkUp: true })) });
  assert.equal(
    resolveBootMac('aa:bb:cc:dd:ee:01', nics('aa:bb:cc:dd:ee:01', 'aa:bb:cc:dd:ee:02')).reason,
    'InInventory',
  );
  assert.equal(resolveBootMac('aa:bb:cc:dd:ee:09', nics('aa:bb:cc:dd:ee:01')).reason, 'NotInInventory');
  assert.equal(resolveBootMac('aa:bb:cc:dd:ee:09', {}).reason, 'NotReportedByBMC');
  const only = resolveBootMac(undefined, nics('aa:bb:cc:dd:ee:05'));
  assert.equal(only.reason, 'FromInventory');
  assert.equal(only.mac, 'aa:bb:cc:dd:ee:05');
  const ambiguous = resolveBootMac(undefined, nics('aa:bb:cc:dd:ee:05', 'aa:bb:cc:dd:ee:06'));
  assert.equal(ambiguous.status, 'False');
  assert.match(ambiguous.message, /set spec\.bootMACAddress/);
});

test('Installed ends the attempt: the group gets the disk answer, the host is provisioned and the hooks hear provisioningEnded once', async () => {
  const store = new MemoryStore();
  const ended: string[] = [];
  const deps = hostDeps(store);
  provideProvisioningHooks(deps, {
    installArgs: async () => [],
    provisioningEnded: async (h) => {
      ended.push(h.metadata.name ?? '');
    },
  });
  const built = buildHostController(deps, parseHostControllerConfig({}));
  try {
    await built.env.hosts.waitForSync();
    const secret = await store.create<Resource>(SECRET_KIND, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'h1-bmc', namespace: NS },
    });
    const created = await store.create(HOST_KIND, {
      ...hostObject('h1'),
      metadata: { name: 'h1', namespace: NS, finalizers: [BMH_FINALIZER] },
    });
    await store.updateStatus(HOST_KIND, {
      ...created,
      status: {
        goodCredentials: { name: 'h1-bmc', resourceVersion: secret.metadata.resourceVersion ?? '' },
        provisioning: { state: 'provisioning', attempt: 1, startedAt: '2026-01-01T00:00:00Z' },
        conditions: [
          {
            type: 'Installed',
            status: 'True',
            reason: 'Test',
            message: '',
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    });
    for (let i = 0; i < 2; i++) await reconcileHost(built.env, { namespace: NS, name: 'h1' }, silentLogger);
    const host = await store.get<Host>(HOST_KIND, { namespace: NS, name: 'h1' });
    assert.equal(host.status?.provisioning?.state, 'provisioned');
    assert.equal(host.status?.provisioning?.startedAt, undefined);
    const group = await store.get<MatchboxGroup & Resource>(GROUP_KIND, { namespace: NS, name: 'h1-boot' });
    assert.equal(group.spec.profileRef.name, 'h1-disk');
    assert.deepEqual(group.spec.selector, { mac: 'aa:bb:cc:dd:ee:01' });
    assert.equal(group.metadata.ownerReferences?.[0]?.uid, host.metadata.uid);
    assert.deepEqual(ended, ['h1']);
  } finally {
    await built.stop();
    await store.close();
  }
});

test('a timed-out or failed install attempt goes to error and is retried; after maxProvisioningRetries the host waits until its spec changes', async () => {
  const store = new MemoryStore();
  const ended: number[] = [];
  const deps = hostDeps(store);
  provideProvisioningHooks(deps, {
    installArgs: async () => [],
    provisioningEnded: async (h) => {
      ended.push(h.status?.provisioning?.attempt ?? 0);
    },
  });
  const built = buildHostController(
    deps,
    parseHostControllerConfig({
      maxProvisioningRetries: 2,
      errorBackoff: { baseSeconds: 0.01, capSeconds: 0.01 },
    }),
  );
  const ref = { namespace: NS, name: 'h1' };
  const reconcile = () => reconcileHost(built.env, ref, silentLogger);
  const get = () => store.get<Host>(HOST_KIND, ref);
  const setStatus = async (mutate: (s: NonNullable<Host['status']>) => void) => {
    const h = await get();
    const status = structuredClone(h.status ?? {});
    mutate(status);
    await store.updateStatus(HOST_KIND, { ...h, status });
  };
  try {
    await built.env.hosts.waitForSync();
    const secret = await store.create<Resource>(SECRET_KIND, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'h1-bmc', namespace: NS },
    });
    await store.create(HOST_KIND, {
      ...hostObject('h1'),
      metadata: { name: 'h1', namespace: NS, finalizers: [BMH_FINALIZER] },
    });
    await store.create(PROFILE_KIND, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxProfile',
      metadata: { name: 'talos', namespace: NS },
      spec: { kernel: '/assets/vmlinuz', args: ['talos.platform=metal'] },
    });
    await setStatus((s) => {
      s.goodCredentials = { name: 'h1-bmc', resourceVersion: secret.metadata.resourceVersion ?? '' };
      s.provisioning = { state: 'provisioning', attempt: 1, startedAt: '2020-01-01T00:00:00Z' };
    });
    // Attempt 1 started long ago: timed out.
    await reconcile();
    let host = await get();
    assert.equal(host.status?.provisioning?.state, 'error');
    assert.equal(host.status?.errorType, 'provisioning error');
    assert.match(
      host.status?.errorMessage ?? '',
      /install attempt 1 timed out after 3600 s \(config not delivered\)/,
    );
    assert.equal(host.status?.provisioning?.startedAt, undefined);
    assert.deepEqual(ended, [1]);

    // After the backoff: attempt 2 starts (its Matchbox objects wait for a sync nobody does here).
    await new Promise((r) => setTimeout(r, 30));
    await reconcile();
    await reconcile();
    host = await get();
    assert.equal(host.status?.provisioning?.state, 'provisioning');
    assert.equal(host.status?.provisioning?.attempt, 2);
    assert.ok(host.status?.provisioning?.startedAt);
    await setStatus((s) => {
      s.conditions = [
        ...(s.conditions ?? []),
        {
          type: 'InstallFailed',
          status: 'True',
          reason: 'ConfigInvalid',
          message: 'machine.install.disk: not found',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ];
    });
    await reconcile();
    host = await get();
    assert.equal(host.status?.provisioning?.state, 'error');
    assert.match(
      host.status?.errorMessage ?? '',
      /install attempt 2 failed: machine\.install\.disk: not found/,
    );
    assert.deepEqual(ended, [1, 2]);

    // Both attempts used: no retry however long it waits...
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(await reconcile(), {});
    assert.equal((await get()).status?.provisioning?.state, 'error');
    // ...until the spec changes: back to available, with a fresh attempt count.
    const h = await get();
    h.spec.description = 'fixed the disk';
    await store.update(HOST_KIND, h);
    await reconcile();
    host = await get();
    assert.equal(host.status?.provisioning?.state, 'available');
    assert.equal(host.status?.provisioning?.attempt, undefined);
  } finally {
    await built.stop();
    await store.close();
  }
});
