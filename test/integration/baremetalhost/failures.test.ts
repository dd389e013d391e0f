// Failures on a real kube-apiserver with the Matchbox pair and sushy-tools: a BMC that goes away
// during provisioning, wrong credentials fixed in the Secret, deletion while provisioning, and a
// deletion blocked by an unreachable BMC until the host is detached.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST_KIND } from '../../../src/controllers/baremetalhost/kinds.ts';
import { BMH_ANNOTATIONS } from '../../../src/crds/baremetalhost.ts';
import { isNotFound } from '../../../src/runtime/errors.ts';
import { waitFor } from '../../env/wait.ts';
import { type Host, NAMESPACE, World } from './world.ts';

let world: World;
const ended: string[] = [];
before(async () => {
  world = await World.start({ backend: 'kube', systems: 4 });
  world.hooks = {
    installArgs: async (host, attempt) => [`metalbox.test-token=${host.metadata.name}-${attempt}`],
    provisioningEnded: async (host) => {
      ended.push(host.metadata.name ?? '');
    },
  };
  await world.startController();
});
after(async () => {
  await world?.close();
});

const hasCondition = (h: Host, type: string, status: string) =>
  h.status?.conditions?.some((c) => c.type === type && c.status === status) ?? false;

async function gone(name: string): Promise<boolean> {
  try {
    await world.host(name);
    return false;
  } catch (error) {
    if (isNotFound(error)) return true;
    throw error;
  }
}

test('a BMC that goes away during provisioning puts the host in error with growing backoff; it recovers by itself when the BMC returns, in the same attempt', async () => {
  const system = world.systems[0]!;
  await world.addHost('down-1', system, { spec: { online: false } });
  await world.waitForState('down-1', 'available');
  await world.sushy.stop();
  try {
    await world.patchHost('down-1', (h) => {
      h.spec.online = true;
    });
    const failing = await world.waitForHost(
      'down-1',
      (h) => h.status?.provisioning?.state === 'error' && (h.status.errorCount ?? 0) >= 3,
      'three consecutive provisioning errors',
      60_000,
    );
    assert.equal(failing.status?.errorType, 'provisioning error');
    assert.match(failing.status?.errorMessage ?? '', /BMC/);
    assert.equal(failing.status?.operationalStatus, 'error');
    assert.equal(failing.status?.provisioning?.attempt, 1, 'BMC failures do not use up install attempts');
    assert.ok(failing.status?.provisioning?.startedAt, 'the attempt is still running');
    const errors = (await world.events('down-1')).filter((e) => e.reason === 'Error');
    assert.ok(errors.length >= 1);
  } finally {
    await world.sushy.start();
  }
  const host = await world.waitForState('down-1', 'provisioned', 120_000);
  assert.equal(host.status?.provisioning?.attempt, 1);
  assert.equal(host.status?.errorType, undefined, 'error cleared');
  assert.equal(host.status?.errorCount, undefined);
  assert.equal(host.status?.operationalStatus, 'OK');
  assert.equal(world.machine('down-1').installs, 1);
  assert.ok(
    ended.includes('down-1'),
    `the hooks heard that provisioning ended (${ended.join(',')}; args ${world.machine('down-1').boots[0]?.args?.join(' ')})`,
  );
  assert.ok(
    world.machine('down-1').boots[0]?.args?.includes('metalbox.test-token=down-1-1'),
    'hook args reached the kernel line',
  );
});

test('wrong BMC credentials are a registration error that says so, without the password; fixing the Secret recovers without a restart', async () => {
  const system = world.systems[1]!;
  await world.addHost('creds-1', system, { password: 'not-the-password' });
  const failing = await world.waitForHost(
    'creds-1',
    (h) => h.status?.errorType === 'registration error',
    'registration error',
    60_000,
  );
  assert.equal(failing.status?.provisioning?.state, 'error');
  assert.match(failing.status?.errorMessage ?? '', /rejected the credentials/);
  assert.match(failing.status?.errorMessage ?? '', /credentials Secret/);
  const text = JSON.stringify([failing.status, await world.events('creds-1')]);
  assert.ok(
    !text.includes('not-the-password') && !text.includes(world.sushy.password),
    'no password in status or Events',
  );

  await world.setSecretPassword('creds-1', world.sushy.password);
  const host = await world.waitForState('creds-1', 'provisioned', 120_000);
  assert.equal(host.status?.goodCredentials?.name, 'creds-1-bmc');
  assert.equal(host.status?.errorType, undefined);
});

test('deleting a host while it provisions powers it off, removes its Matchbox answers from both servers, then lets the host go', async () => {
  const system = world.systems[2]!;
  world.machineSettings = { pollMs: 300, installMs: 60_000 };
  await world.addHost('del-1', system);
  world.machineSettings = { pollMs: 300, installMs: 500 };
  await waitFor(async () => world.machine('del-1').phase === 'installing', {
    what: 'machine installing',
    timeoutMs: 90_000,
  });
  assert.equal((await world.host('del-1')).status?.provisioning?.state, 'provisioning');
  assert.deepEqual(await world.bootAnswers(system.mac), ['install', 'install']);

  await world.store.delete(HOST_KIND, { namespace: NAMESPACE, name: 'del-1' });
  await waitFor(() => gone('del-1'), { what: 'host removed', timeoutMs: 90_000 });
  assert.equal((await world.systemState(system)).power, 'Off');
  assert.deepEqual(await world.bootAnswers(system.mac), ['none', 'none']);
  for (const name of ['del-1-boot']) await assert.rejects(world.group(name), (e) => isNotFound(e));
  for (const name of ['del-1-install', 'del-1-disk'])
    await assert.rejects(world.profile(name), (e) => isNotFound(e));
  assert.ok(ended.includes('del-1'), 'the hooks heard that provisioning ended');
});

test('a deletion blocked by an unreachable BMC retries with backoff visible in status; the detached annotation lets go', async () => {
  const system = world.systems[3]!;
  await world.addHost('stuck-1', system);
  await world.waitForState('stuck-1', 'provisioned', 120_000);
  await world.sushy.stop();
  try {
    await world.store.delete(HOST_KIND, { namespace: NAMESPACE, name: 'stuck-1' });
    const stuck = await world.waitForHost(
      'stuck-1',
      (h) => h.status?.provisioning?.state === 'deleting' && (h.status.errorCount ?? 0) >= 2,
      'deletion retrying',
      60_000,
    );
    assert.equal(stuck.status?.errorType, 'power management error');
    assert.match(stuck.status?.errorMessage ?? '', /BMC/);
    await sleep(500);
    assert.equal(await gone('stuck-1'), false, 'not released while the BMC cannot power it off');
    await world.patchHost('stuck-1', (h) => {
      h.metadata.annotations = { ...h.metadata.annotations, [BMH_ANNOTATIONS.detached]: 'true' };
    });
    await waitFor(() => gone('stuck-1'), { what: 'detached host released', timeoutMs: 60_000 });
    assert.ok(hasCondition(stuck, 'Provisioned', 'True'));
  } finally {
    await world.sushy.start();
  }
});
