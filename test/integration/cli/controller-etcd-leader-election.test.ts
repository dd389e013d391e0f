// Standalone mode end to end: two real `metalbox controller --store etcd://… --leader-elect`
// processes on a real etcd, with the Secret key file as deploy/standalone configures it (one replica
// by flag, the other by $METALBOX_ENCRYPTION_KEY_FILE from /etc/default/metalbox). Who leads is read
// from each process's /metrics (metalbox_leader).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';
import { scratchDir } from '../../env/peers.ts';
import { freePort } from '../../env/ports.ts';
import { type ManagedProcess, startProcess } from '../../env/process.ts';
import { waitFor } from '../../env/wait.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const scratch = scratchDir('controller-etcd-leader-election');
const keyFile = join(scratch.dir, 'encryption-keys.yaml');
let etcd: EtcdPeer;
const running: ManagedProcess[] = [];

before(async () => {
  etcd = await startEtcd({ name: 'controller-etcd' });
  writeFileSync(keyFile, `keys:\n  - name: test\n    secret: ${randomBytes(32).toString('base64')}\n`, {
    mode: 0o600,
  });
});
after(async () => {
  await Promise.all(running.map((p) => p.kill()));
  await etcd?.stop();
  scratch.remove();
});

interface Replica {
  name: string;
  proc: ManagedProcess;
  leader(): Promise<number | undefined>;
}

async function startController(name: string, keyBy: 'flag' | 'env'): Promise<Replica> {
  const port = await freePort();
  const proc = startProcess({
    name,
    command: 'bash',
    // The systemd unit's flags, with this etcd and a free ops port.
    args: [
      'scripts/node',
      'src/cli/main.ts',
      'controller',
      '--store',
      `etcd://${etcd.endpoint}/metalbox`,
      '--leader-elect',
      '--namespace',
      'metalbox-system',
      '--metrics-addr',
      `127.0.0.1:${port}`,
      ...(keyBy === 'flag' ? ['--encryption-key-file', keyFile] : []),
    ],
    env: {
      ...process.env,
      ...(keyBy === 'env' ? { METALBOX_ENCRYPTION_KEY_FILE: keyFile } : {}),
    },
    logDir: scratch.dir,
    cwd: repo,
  });
  running.push(proc);
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
  return {
    name,
    proc,
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
}

test('of two controllers on etcd exactly one leads; after SIGKILL of the leader the other leads within 20 s', async (t) => {
  const a = await startController('controller-etcd-a', 'flag');
  const b = await startController('controller-etcd-b', 'env');
  const [leader, standby] = await waitFor(
    async () => {
      const [la, lb] = await Promise.all([a.leader(), b.leader()]);
      assert.ok(!(la === 1 && lb === 1), 'two leaders at once');
      if (la === 1 && lb === 0) return [a, b] as const;
      if (lb === 1 && la === 0) return [b, a] as const;
      return undefined;
    },
    {
      what: 'one leader',
      timeoutMs: 30_000,
      intervalMs: 200,
      context: () => `${a.proc.tail(5)}\n${b.proc.tail(5)}`,
    },
  );
  // The standby stays a standby while the leader renews.
  await sleep(3000);
  assert.equal(await standby.leader(), 0);
  assert.equal(await leader.leader(), 1);

  const killedAt = Date.now();
  await leader.proc.kill();
  await waitFor(async () => (await standby.leader()) === 1, {
    what: `${standby.name} to lead`,
    timeoutMs: 25_000,
    intervalMs: 100,
    context: () => standby.proc.tail(10),
  });
  const takeoverMs = Date.now() - killedAt;
  t.diagnostic(`takeover after SIGKILL: ${takeoverMs} ms`);
  assert.ok(takeoverMs < 20_000, `takeover took ${takeoverMs} ms`);
  assert.ok(standby.proc.isRunning(), 'the new leader keeps running');
  const elected = readFileSync(standby.proc.logFile, 'utf8')
    .split('\n')
    .some((l) => l.includes('"msg":"leader election"') && l.includes('"leading":true'));
  assert.ok(elected, `no "leader election" log line with leading true:\n${standby.proc.tail(10)}`);
});
