import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { loadControllerConfig, parseControllerFlags, UsageError } from '../../src/cli/controller-flags.ts';

const dir = mkdtempSync(join(tmpdir(), 'metalbox-controller-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function flags(args: string[]) {
  const parsed = parseControllerFlags(args);
  assert.ok(!parsed.help);
  return parsed.flags;
}

function usageError(args: string[]): string {
  try {
    parseControllerFlags(args);
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    return error.message;
  }
  assert.fail(`${args.join(' ')} was accepted`);
}

test('defaults: kube store, all namespaces, no leader election, ops on loopback :8080, info logs', () => {
  assert.deepEqual(flags([]), {
    store: { type: 'kube' },
    namespace: '',
    leaderElect: false,
    leaderElectionId: 'metalbox-controller',
    metricsAddr: { host: '127.0.0.1', port: 8080 },
    logLevel: 'info',
  });
});

test('every flag is read into its typed value', () => {
  const f = flags([
    '--store=file:./state',
    '--namespace',
    'metalbox-system',
    '--metrics-addr',
    '127.0.0.1:0',
    '--concurrency=4',
    '--config',
    'c.yaml',
    '--log-level=debug',
  ]);
  assert.deepEqual(f.store, { type: 'file', dir: resolve('state') });
  assert.equal(f.namespace, 'metalbox-system');
  assert.deepEqual(f.metricsAddr, { host: '127.0.0.1', port: 0 });
  assert.equal(f.concurrency, 4);
  assert.equal(f.config, 'c.yaml');
  assert.equal(f.logLevel, 'debug');
  const le = flags([
    '--leader-elect',
    '--kubeconfig=/k',
    '--leader-election-namespace=ops',
    '--leader-election-id=mbx.lock',
    '--metrics-addr=[::1]:9090',
  ]);
  assert.equal(le.leaderElect, true);
  assert.equal(le.kubeconfig, '/k');
  assert.equal(le.leaderElectionNamespace, 'ops');
  assert.equal(le.leaderElectionId, 'mbx.lock');
  assert.deepEqual(le.metricsAddr, { host: '::1', port: 9090 });
});

test('each bad value is reported with the flag it belongs to', () => {
  const table: [string[], RegExp][] = [
    [['--store=etcd'], /^--store must be kube\[:<kubeconfig>\], file:<dir> or etcd:\/\//],
    [['--store=file:'], /^--store must be kube\[:<kubeconfig>\], file:<dir> or etcd:\/\//],
    [['--store=etcd://a:99999'], /^--store: "a:99999" .* is not host or host:port/],
    [['--namespace=Bad_NS'], /^--namespace must be a lowercase RFC 1123 label/],
    [['--leader-election-namespace=-x'], /^--leader-election-namespace must be a lowercase RFC 1123 label/],
    [['--leader-election-id=UPPER'], /^--leader-election-id must be a lowercase RFC 1123 subdomain/],
    [['--metrics-addr=8080'], /^--metrics-addr must be host:port/],
    [['--metrics-addr=:70000'], /^--metrics-addr must be host:port/],
    [['--concurrency=two'], /^--concurrency must be a whole number/],
    [['--concurrency=0'], /^--concurrency must be between 1 and 256/],
    [['--log-level=verbose'], /^--log-level must be one of trace, debug, info/],
    [['--store=file:/tmp/x', '--kubeconfig=/k'], /^--kubeconfig applies only to --store kube/],
    [['--store=etcd://e:2379', '--kubeconfig=/k'], /^--kubeconfig applies only to --store kube/],
    [['--store=kube:/a', '--kubeconfig=/k'], /^--kubeconfig and --store kube:<kubeconfig> both name/],
    [['--store=etcd://e', '--leader-election-namespace=ops'], /^--leader-election-namespace applies only/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--namespace'], /--namespace/],
  ];
  for (const [args, expected] of table) assert.match(usageError(args), expected, args.join(' '));
});

test('--store takes every store the operator CLI takes, else $METALBOX_STORE, else kube', () => {
  const etcd = parseControllerFlags(
    ['--store=etcd://10.0.0.1,10.0.0.2:2380/mbx', '--leader-elect', '--encryption-key-file=/k.yaml'],
    {},
  );
  assert.ok(!etcd.help);
  assert.deepEqual(etcd.flags.store, {
    type: 'etcd',
    endpoints: ['10.0.0.1:2379', '10.0.0.2:2380'],
    prefix: '/mbx',
  });
  assert.equal(etcd.flags.leaderElect, true);
  assert.deepEqual(etcd.storeValues, {
    store: 'etcd://10.0.0.1,10.0.0.2:2380/mbx',
    'encryption-key-file': '/k.yaml',
  });
  const fromEnv = parseControllerFlags([], { METALBOX_STORE: 'etcd://e:1/m' });
  assert.ok(!fromEnv.help);
  assert.deepEqual(fromEnv.flags.store, { type: 'etcd', endpoints: ['e:1'], prefix: '/m' });
  const kube = parseControllerFlags(['--store=kube:./kc'], { METALBOX_STORE: 'file:/x' });
  assert.ok(!kube.help);
  assert.deepEqual(kube.flags.store, { type: 'kube', kubeconfig: resolve('kc') });
});

test('several bad flags are all reported at once', () => {
  const message = usageError(['--store=x', '--concurrency=0']);
  assert.match(message, /--store .*; --concurrency /);
});

test('--help wins over everything else', () => {
  assert.deepEqual(parseControllerFlags(['--store=x', '--help']), { help: true });
});

test('--config is a YAML mapping; an empty file is an empty mapping; other content names --config', () => {
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'matchbox:\n  endpoints: [a:8081]\n');
  assert.deepEqual(loadControllerConfig(good), { matchbox: { endpoints: ['a:8081'] } });
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '');
  assert.deepEqual(loadControllerConfig(empty), {});
  const list = join(dir, 'list.yaml');
  writeFileSync(list, '- a\n- b\n');
  assert.throws(() => loadControllerConfig(list), /^UsageError: --config: .* must hold a YAML mapping/);
  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'a: [1, 2\n');
  assert.throws(() => loadControllerConfig(broken), /^UsageError: --config: .* is not valid YAML/);
  assert.throws(() => loadControllerConfig(join(dir, 'missing.yaml')), /--config: cannot read .*ENOENT/);
});
