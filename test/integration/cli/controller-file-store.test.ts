// `metalbox controller --store file:<dir>` as a real process: it serves its ops endpoints, leads
// through the store's lease, stops cleanly on SIGTERM with exit 0; beside it the CLI applies and
// reads the same directory, a second controller without --leader-elect is refused, one with it
// waits as a standby and takes over; bad flags exit 2 naming the flag.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { scratchDir } from '../../env/peers.ts';
import { freePort } from '../../env/ports.ts';
import { startProcess } from '../../env/process.ts';
import { waitFor } from '../../env/wait.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const scratch = scratchDir('controller-file-store');
after(() => scratch.remove());

const cli = (...args: string[]) => ['scripts/node', 'src/cli/main.ts', 'controller', ...args];

test('on the file store it serves /healthz /readyz /metrics, shares the directory, and exits 0 on SIGTERM', async () => {
  const port = await freePort();
  const dir = join(scratch.dir, 'state');
  const proc = startProcess({
    name: 'controller-file',
    command: 'bash',
    args: cli('--store', `file:${dir}`, '--metrics-addr', `127.0.0.1:${port}`),
    logDir: scratch.dir,
    cwd: repo,
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200, {
      what: '/readyz',
      timeoutMs: 30_000,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : 'the controller exited'),
    });
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^metalbox_leader 1$/m);
    assert.match(metrics, /^process_cpu_seconds_total /m, 'process metrics are exported too');

    // The CLI works on the directory while the controller runs (other processes' writes show up).
    const metalbox = (...args: string[]) =>
      promisify(execFile)('bash', ['scripts/node', 'src/cli/main.ts', ...args, '--store', `file:${dir}`], {
        cwd: repo,
        timeout: 30_000,
      });
    const applied = await metalbox('apply', '-f', join(repo, 'manifests/matchboxprofiles.yaml'));
    assert.match(applied.stdout, /^matchboxprofile\.metalbox\.io\/\S+ created$/m);
    assert.doesNotMatch(applied.stderr, /ExperimentalWarning/, 'no SQLite warning on the CLI');
    const listed = await metalbox('get', 'mbp', '-n', 'metalbox-system');
    assert.match(listed.stdout, /^NAME\s/);

    // A second controller without --leader-elect would reconcile beside the first: it must refuse.
    const second = await promisify(execFile)(
      'bash',
      cli('--store', `file:${dir}`, '--metrics-addr', '127.0.0.1:0'),
      { cwd: repo, timeout: 30_000 },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(second.code, 1);
    assert.match(second.stdout, /another controller \(\S+\) runs on file:/);

    // With --leader-elect it waits as a standby, and leads once the first stops.
    const standbyPort = await freePort();
    const standby = startProcess({
      name: 'controller-file-standby',
      command: 'bash',
      args: cli('--store', `file:${dir}`, '--leader-elect', '--metrics-addr', `127.0.0.1:${standbyPort}`),
      logDir: scratch.dir,
      cwd: repo,
    });
    try {
      const leader = async () =>
        (
          await (await fetch(`http://127.0.0.1:${standbyPort}/metrics`).catch(() => undefined))?.text()
        )?.match(/^metalbox_leader (\d)$/m)?.[1];
      await waitFor(async () => (await leader()) === '0', {
        what: 'the standby to serve metalbox_leader 0',
        timeoutMs: 30_000,
        context: () => standby.tail(),
      });
      await proc.stop(15_000);
      assert.equal(await proc.exited, 0, proc.tail());
      await waitFor(async () => (await leader()) === '1', {
        what: 'the standby to take over',
        timeoutMs: 20_000,
        context: () => standby.tail(),
      });
      await standby.stop(15_000);
      assert.equal(await standby.exited, 0, standby.tail());
    } finally {
      await standby.kill();
    }
  } finally {
    await proc.kill();
  }
});

test('bad flags exit 2 with the flag named, before anything starts', async () => {
  const result = await promisify(execFile)(
    'bash',
    cli('--store', 'file:/tmp/x', '--kubeconfig', '/k', '--concurrency=0'),
    {
      cwd: repo,
      timeout: 30_000,
    },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--kubeconfig applies only to --store kube/);
  assert.match(result.stderr, /--concurrency must be between 1 and 256/);
  assert.match(result.stderr, /Usage: metalbox controller/);
});
