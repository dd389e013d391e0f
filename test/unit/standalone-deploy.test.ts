// deploy/standalone as an operator installs it: the systemd unit's ExecStart, with
// /etc/default/metalbox (metalbox.env) expanded as systemd does, must be a command line
// `metalbox controller` accepts, and controller.yaml must be settings its families accept.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadControllerConfig, parseControllerFlags } from '../../src/cli/controller-flags.ts';
import { STORE_FLAGS_HELP } from '../../src/cli/store-flag.ts';
import { parseHostControllerConfig } from '../../src/controllers/baremetalhost/config.ts';
import { parseMatchboxSyncConfig } from '../../src/controllers/matchbox/config.ts';

const dir = fileURLToPath(new URL('../../deploy/standalone/', import.meta.url));

/** KEY=VALUE lines of an EnvironmentFile; `commented` also returns the `#KEY=VALUE` examples. */
function envFile(commented = false): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(`${dir}metalbox.env`, 'utf8').split('\n')) {
    const m = (commented ? /^#?([A-Z_][A-Z0-9_]*)=(.*)$/ : /^([A-Z_][A-Z0-9_]*)=(.*)$/).exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/** ExecStart's words after `metalbox controller`, with ${VAR} expanded (one word each, as systemd does). */
function execStartArgs(env: Record<string, string>): string[] {
  const unit = readFileSync(`${dir}metalbox-controller.service`, 'utf8').replace(/\\\n/g, ' ');
  const line = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  assert.ok(line, 'the unit has an ExecStart');
  const words = line
    .slice('ExecStart='.length)
    .trim()
    .split(/\s+/)
    .map((w) =>
      w.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) => {
        assert.ok(name in env, `ExecStart uses \${${name}}, which metalbox.env does not set`);
        return env[name]!;
      }),
    );
  assert.match(words[0]!, /\/bin\/metalbox$/);
  assert.equal(words[1], 'controller');
  return words.slice(2);
}

test('the systemd unit starts metalbox controller with flags it accepts: etcd store, leader election', () => {
  const env = envFile();
  const parsed = parseControllerFlags(execStartArgs(env), env);
  assert.ok(!parsed.help);
  assert.equal(parsed.flags.store.type, 'etcd');
  assert.deepEqual(parsed.flags.store, {
    type: 'etcd',
    endpoints: ['10.0.20.11:2379', '10.0.20.12:2379', '10.0.20.13:2379'],
    prefix: '/metalbox',
  });
  assert.equal(parsed.flags.leaderElect, true);
  assert.equal(parsed.flags.namespace, 'metalbox-system');
  assert.deepEqual(parsed.flags.metricsAddr, { host: '127.0.0.1', port: 9440 });
  assert.equal(parsed.flags.config, '/etc/metalbox/controller.yaml');
});

test('every variable metalbox.env sets or shows is one the store flags read', () => {
  const names = Object.keys(envFile(true));
  assert.ok(names.includes('METALBOX_ENCRYPTION_KEY_FILE'), 'the key file is configured');
  for (const name of names) assert.ok(STORE_FLAGS_HELP.includes(name), `${name} is not read by metalbox`);
});

test('controller.yaml holds settings the controller families accept', () => {
  const config = loadControllerConfig(`${dir}controller.yaml`);
  const matchbox = parseMatchboxSyncConfig(config.matchbox);
  assert.equal(matchbox.endpoints.length, 2);
  assert.equal(parseHostControllerConfig(config.baremetalhost).provisioningLimit, 20);
});
