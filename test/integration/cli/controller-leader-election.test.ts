// Leader election end to end: real `metalbox controller` processes started with the Deployment's
// arguments (--store=kube --leader-elect ...), running as the controller's ServiceAccount identity
// under deploy/'s RBAC, against a real kube-apiserver. Who leads is read from each process's /metrics (metalbox_leader) and the Lease.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CONTROLLER_NAMESPACE, type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { scratchDir } from '../../env/peers.ts';
import { freePort } from '../../env/ports.ts';
import { type ManagedProcess, startProcess } from '../../env/process.ts';
import { waitFor } from '../../env/wait.ts';
import { deploymentArgs, loadDeployManifests } from '../../fixtures/deploy-manifests.ts';
import { applyManifests } from '../deploy/apply.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const scratch = scratchDir('controller-leader-election');
let kube: KubeApiserverPeer;
let running: ManagedProcess[] = [];

before(async () => {
  kube = await startKubeApiserver();
  await applyManifests(kube, loadDeployManifests());
});
afterEach(async () => {
  await Promise.all(running.map((p) => p.kill()));
  running = [];
});
after(async () => {
  await kube?.stop();
  scratch.remove();
});

interface Replica {
  name: string;
  proc: ManagedProcess;
  port: number;
  /** Its Lease holder identity, from its log. */
  identity(): string | undefined;
  leader(): Promise<number | undefined>;
}

async function startController(name: string, leaseId: string): Promise<Replica> {
  const port = await freePort();
  const proc = startProcess({
    name,
    command: 'bash',
    // The Deployment's own arguments, pointed at the test apiserver and a Lease of this test.
    args: [
      'scripts/node',
      'src/cli/main.ts',
      ...deploymentArgs().filter((a) => !/^--(metrics-addr|leader-election-id|config)=/.test(a)),
      '--kubeconfig',
      kube.kubeconfigFile('controller'),
      '--leader-election-id',
      leaseId,
      '--metrics-addr',
      `127.0.0.1:${port}`,
    ],
    logDir: scratch.dir,
    cwd: repo,
  });
  running.push(proc);
  const replica: Replica = {
    name,
    proc,
    port,
    identity() {
      const line = readFileSync(proc.logFile, 'utf8')
        .split('\n')
        .find((l) => l.includes('"campaigning for leadership"'));
      return line ? (JSON.parse(line) as { identity: string }).identity : undefined;
    },
    async leader() {
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const m = /^metalbox_leader (\d)/m.exec(text);
        return m ? Number(m[1]) : undefined;
      } catch {
        return undefined;
      }
    },
  };
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
    {
      what: `${name} /readyz`,
      timeoutMs: 30_000,
      intervalMs: 200,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : `${name} exited`),
    },
  );
  return replica;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseTransitions?: number;
  acquireTime?: string;
  renewTime?: string;
}

/** The Lease as the apiserver stores it (raw JSON: MicroTimes stay strings). */
async function lease(name: string): Promise<LeaseSpec> {
  const res = await kube.request(
    'GET',
    `/apis/coordination.k8s.io/v1/namespaces/${CONTROLLER_NAMESPACE}/leases/${name}`,
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body as { spec: LeaseSpec }).spec;
}

/** Waits until exactly one replica reports metalbox_leader 1; returns [leader, standby]. */
async function oneLeader(a: Replica, b: Replica): Promise<[Replica, Replica]> {
  return waitFor(
    async () => {
      const [la, lb] = await Promise.all([a.leader(), b.leader()]);
      if (la === 1 && lb === 0) return [a, b] as [Replica, Replica];
      if (lb === 1 && la === 0) return [b, a] as [Replica, Replica];
      assert.ok(!(la === 1 && lb === 1), 'two leaders at once');
      return undefined;
    },
    {
      what: 'one leader',
      timeoutMs: 30_000,
      intervalMs: 200,
      context: () => `${a.proc.tail(5)}\n${b.proc.tail(5)}`,
    },
  );
}

test('of two controller processes one leads and holds its Lease for 60 s; after SIGKILL of the leader the other leads within 20 s', async (t) => {
  const a = await startController('controller-a', 'failover');
  const b = await startController('controller-b', 'failover');
  const [leader, standby] = await oneLeader(a, b);
  const first = await lease('failover');
  assert.equal(first.holderIdentity, leader.identity());
  // Six renew deadlines (10 s each): the leader keeps renewing, the standby stays a standby, and
  // neither process exits (in a Pod an exit is a restart).
  let previous = first;
  const renewals = new Set<string>();
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    await sleep(5000);
    assert.ok(leader.proc.isRunning(), `the leader exited: ${leader.proc.tail(10)}`);
    assert.ok(standby.proc.isRunning(), `the standby exited: ${standby.proc.tail(10)}`);
    const now = await lease('failover');
    assert.equal(now.holderIdentity, leader.identity(), 'the Lease changed hands');
    assert.equal(now.leaseTransitions, first.leaseTransitions);
    assert.equal(now.acquireTime, first.acquireTime, 'a renewal keeps acquireTime');
    assert.ok(
      Date.parse(now.renewTime ?? '') > Date.parse(previous.renewTime ?? ''),
      `renewTime did not advance in 5 s: ${previous.renewTime} -> ${now.renewTime}`,
    );
    renewals.add(now.renewTime ?? '');
    previous = now;
    assert.equal(await leader.leader(), 1);
    assert.equal(await standby.leader(), 0);
  }
  t.diagnostic(`renewTime advanced at each of ${renewals.size} reads over 60 s`);

  const killedAt = Date.now();
  await leader.proc.kill();
  await waitFor(async () => (await standby.leader()) === 1, {
    what: 'the standby to lead',
    timeoutMs: 25_000,
    intervalMs: 100,
    context: () => standby.proc.tail(10),
  });
  const takeoverMs = Date.now() - killedAt;
  t.diagnostic(`takeover after SIGKILL: ${takeoverMs} ms`);
  assert.ok(takeoverMs < 20_000, `takeover took ${takeoverMs} ms`);
  const after = await lease('failover');
  assert.equal(after.holderIdentity, standby.identity());
  assert.equal(after.leaseTransitions, 1);
});

test('SIGTERM: the leader stops cleanly, releases the Lease and exits 0; the standby takes over at once', async (t) => {
  const a = await startController('controller-c', 'release');
  const b = await startController('controller-d', 'release');
  const [leader, standby] = await oneLeader(a, b);
  const stoppedAt = Date.now();
  await leader.proc.stop(15_000);
  assert.equal(await leader.proc.exited, 0, leader.proc.tail());
  assert.match(readFileSync(leader.proc.logFile, 'utf8'), /"reason":"stopped","exitCode":0/);
  await waitFor(async () => (await standby.leader()) === 1, {
    what: 'the standby to lead',
    timeoutMs: 10_000,
    intervalMs: 100,
  });
  // A released Lease is taken at the standby's next try (2 s), not after the 15 s expiry.
  const takeoverMs = Date.now() - stoppedAt;
  t.diagnostic(`takeover after SIGTERM: ${takeoverMs} ms`);
  assert.ok(takeoverMs < 8_000, `takeover after a release took ${takeoverMs} ms`);
  assert.equal((await lease('release')).holderIdentity, standby.identity());
});

test('a leader that can no longer renew its Lease (taken by another holder) stops and exits non-zero', async () => {
  const a = await startController('controller-e', 'stolen');
  await waitFor(async () => (await a.leader()) === 1, {
    what: 'a leads',
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  const path = `/apis/coordination.k8s.io/v1/namespaces/${CONTROLLER_NAMESPACE}/leases/stolen`;
  const current = (await kube.request('GET', path)).body as { metadata: object; spec: object };
  const now = new Date().toISOString().replace('Z', '000Z');
  const stolen = await kube.request('PUT', path, {
    ...current,
    spec: {
      ...current.spec,
      holderIdentity: 'intruder',
      renewTime: now,
      acquireTime: now,
      leaseDurationSeconds: 60,
    },
  });
  assert.equal(stolen.status, 200, JSON.stringify(stolen.body));
  // Renewals fail from now on; after the 10 s renew deadline the replica must give up and exit.
  const code = await Promise.race([a.proc.exited, sleep(30_000).then(() => 'still running' as const)]);
  assert.equal(code, 1, a.proc.tail());
  const log = readFileSync(a.proc.logFile, 'utf8');
  assert.match(log, /leadership lost: stopping/);
  assert.match(log, /"reason":"leadership-lost","exitCode":1/);
});
