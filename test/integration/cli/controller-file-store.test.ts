// `metalbox controller --store file:<dir>` as a real process: it serves its ops endpoints, leads
// on its own, stops cleanly on SIGTERM with exit 0, refuses a second process on the same directory,
// and rejects bad flags with exit 2 naming the flag.
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

test('on the file store it serves /healthz /readyz /metrics, leads alone, and exits 0 on SIGTERM', async () => {
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

    // A second controller on the same directory would diverge from the first: it must refuse.
    const second = await promisify(execFile)(
      'bash',
      cli('--store', `file:${dir}`, '--metrics-addr', '127.0.0.1:0'),
      {
        cwd: repo,
        timeout: 30_000,
      },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(second.code, 1);
    assert.match(second.stdout, /cannot open the store/);

    await proc.stop(15_000);
    assert.equal(await proc.exited, 0, proc.tail());
  } finally {
    await proc.kill();
  }
});

test('bad flags exit 2 with the flag named, before anything starts', async () => {
  const result = await promisify(execFile)(
    'bash',
    cli('--store', 'file:/tmp/x', '--leader-elect', '--concurrency=0'),
    {
      cwd: repo,
      timeout: 30_000,
    },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--leader-elect needs --store kube/);
  assert.match(result.stderr, /--concurrency must be between 1 and 256/);
  assert.match(result.stderr, /Usage: metalbox controller/);
});
