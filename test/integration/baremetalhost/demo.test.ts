// `metalbox demo` (what `npm run demo` runs) end to end: exit 0 with all five seed hosts
// provisioned, every Matchbox answering boot-from-disk, and the SIMULATION labelled as such.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scratchDir } from '../../env/peers.ts';
import { startProcess } from '../../env/process.ts';

const scratch = scratchDir('bmh-demo');
after(() => scratch.remove());

test('metalbox demo provisions the five seed hosts, shows the table, tears down and exits 0', async () => {
  const proc = startProcess({
    name: 'demo',
    command: 'bash',
    args: ['scripts/node', 'src/cli/main.ts', 'demo', '--timeout', '300'],
    logDir: scratch.dir,
    cwd: fileURLToPath(new URL('../../../', import.meta.url)),
  });
  // The child is unref'd (it must never keep a test process alive): hold the loop open meanwhile.
  const keepAlive = setInterval(() => {}, 1000);
  const code = await proc.exited.finally(() => clearInterval(keepAlive));
  const out = readFileSync(proc.logFile, 'utf8');
  assert.equal(code, 0, out.slice(-3000));
  assert.match(out, /SIMULATION: the BMCs are sushy-tools fake systems/);
  assert.match(out, /HOST\s+STATE\s+BMC POWER/);
  assert.match(out, /all 5 hosts provisioned in \d+ s/);
  for (const host of ['cp-01', 'cp-02', 'cp-03', 'worker-01', 'worker-02']) {
    assert.match(
      out,
      new RegExp(
        `${host}\\s+attempt 1, config fetched by 127\\.0\\.0\\.1\\d, installed: InstallSequenceFinished, installs seen by the SIMULATED machine: 1, Matchbox answers now: boot-from-disk / boot-from-disk`,
      ),
    );
  }
  assert.match(out, /tearing down \.\.\.\ndone\./);
});
