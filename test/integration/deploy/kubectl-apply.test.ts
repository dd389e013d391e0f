// `kubectl apply -k deploy/` against a real kube-apiserver installs cleanly (no error, no warning,
// PodSecurity "restricted" included), is idempotent, and leaves the objects in place. No
// controller-manager runs, so the Deployment's pods are never created: this checks the install only.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { findKubectl } from '../../env/kubectl.ts';
import { DEPLOY_DIR, loadDeployManifests } from '../../fixtures/deploy-manifests.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));

const kubectlPath = findKubectl();
// In CI a missing kubectl is a broken machine image: fail, never skip.
const skip = kubectlPath === undefined && process.env.CI !== 'true' ? 'kubectl is not installed' : false;

let kube: KubeApiserverPeer;
before(async () => {
  if (skip) return;
  kube = await startKubeApiserver();
});
after(async () => {
  await kube?.stop();
});

async function kubectl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  assert.ok(kubectlPath, 'kubectl is not installed (set KUBECTL or install it at /usr/bin/kubectl)');
  try {
    return await run(kubectlPath, ['--kubeconfig', kube.kubeconfigFile('admin'), ...args], {
      cwd: repo,
      timeout: 120_000,
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    assert.fail(`kubectl ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

test('kubectl apply -k deploy/ installs cleanly, then again changes nothing', { skip }, async () => {
  const first = await kubectl('apply', '-k', DEPLOY_DIR);
  assert.equal(first.stderr.trim(), '', 'no errors or warnings (PodSecurity restricted included)');
  const expected = loadDeployManifests().length;
  const created = first.stdout.trim().split('\n');
  assert.equal(created.length, expected, first.stdout);
  for (const line of created) assert.match(line, / (created|configured|serverside-applied)$/);

  const pdbPath = '/apis/policy/v1/namespaces/metalbox-system/poddisruptionbudgets/metalbox-controller';
  const pdbVersion = async () =>
    ((await kube.request('GET', pdbPath)).body as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion;
  const pdbBefore = await pdbVersion();
  const second = await kubectl('apply', '-k', DEPLOY_DIR);
  assert.equal(second.stderr.trim(), '');
  for (const line of second.stdout.trim().split('\n')) {
    // kubectl always sends a PodDisruptionBudget's selector (its patch strategy is "replace") and
    // so says "configured"; the apiserver finds nothing to change.
    if (line.startsWith('poddisruptionbudget.policy/')) continue;
    assert.match(line, / unchanged$/, second.stdout);
  }
  assert.equal(await pdbVersion(), pdbBefore, 'the PodDisruptionBudget was not changed');

  // The CRDs are served and the controller's objects exist as written.
  await kubectl(
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    'crd/baremetalhosts.metalbox.io',
    'crd/matchboxprofiles.metalbox.io',
    'crd/matchboxgroups.metalbox.io',
    'crd/talosmachineconfigs.metalbox.io',
  );
  const deployment = await kube.request(
    'GET',
    '/apis/apps/v1/namespaces/metalbox-system/deployments/metalbox-controller',
  );
  assert.equal(deployment.status, 200);
  const spec = (
    deployment.body as { spec: { replicas: number; template: { spec: { serviceAccountName: string } } } }
  ).spec;
  assert.equal(spec.replicas, 2);
  assert.equal(spec.template.spec.serviceAccountName, 'metalbox-controller');
  const bmh = await kubectl('get', 'bmh', '-A', '-o', 'name');
  assert.equal(bmh.stdout.trim(), '', 'the bmh short name resolves (no hosts yet)');
});

test('kubectl apply -f manifests/ on top of the install keeps pod security and ships no conflicting group', {
  skip,
}, async () => {
  const applied = await kubectl('apply', '-f', 'manifests/');
  assert.equal(applied.stderr.trim(), '', 'no errors or warnings');
  assert.match(applied.stdout, /^namespace\/metalbox-system (unchanged|configured)$/m);
  assert.match(applied.stdout, /^baremetalhost\.metalbox\.io\/cp-01 created$/m);
  const ns = await kube.request('GET', '/api/v1/namespaces/metalbox-system');
  const labels = (ns.body as { metadata: { labels?: Record<string, string> } }).metadata.labels ?? {};
  assert.equal(labels['pod-security.kubernetes.io/enforce'], 'restricted', JSON.stringify(labels));
  // The hosts own the group for their MAC; manifests/ itself holds none that would conflict.
  const groups = await kubectl('get', 'mbg', '-n', 'metalbox-system', '-o', 'name');
  assert.equal(groups.stdout.trim(), '');
});

test('deprovisioning as docs/baremetalhost.md says is accepted by the CRD; removing profileRef alone is not', {
  skip,
}, async () => {
  const doc = readFileSync(join(repo, 'docs/baremetalhost.md'), 'utf8');
  const command = /^kubectl -n metalbox-system patch bmh (\S+) --type merge -p '(.+)'$/m.exec(doc);
  assert.ok(command, 'docs/baremetalhost.md shows the deprovisioning patch');
  const [, host, patch] = command as unknown as [string, string, string];
  const removeOnly = JSON.stringify([{ op: 'remove', path: '/spec/profileRef' }]);
  const alone = await run(
    kubectlPath!,
    [
      '--kubeconfig',
      kube.kubeconfigFile('admin'),
      ...['-n', 'metalbox-system', 'patch', 'bmh', host, '--type', 'json', '-p', removeOnly],
    ],
    { cwd: repo },
  ).then(
    () => 'accepted',
    (e: { stderr?: string }) => e.stderr ?? '',
  );
  assert.match(alone, /profileRef is required when bootTarget is install/);
  // The docs quote the refusal; it must be the apiserver's own words.
  assert.ok(doc.includes('profileRef is required when bootTarget is install'));

  await kubectl('-n', 'metalbox-system', 'patch', 'bmh', host, '--type', 'merge', '-p', patch);
  const after = await kube.request(
    'GET',
    `/apis/metalbox.io/v1alpha1/namespaces/metalbox-system/baremetalhosts/${host}`,
  );
  const spec = (after.body as { spec: { bootTarget?: string; profileRef?: unknown } }).spec;
  assert.equal(spec.bootTarget, 'disk');
  assert.equal(spec.profileRef, undefined);
  // And asking for the install again, as the docs say, is accepted too.
  const again = /--type merge -p '(\{"spec":\{"bootTarget":"install"[^']+)'/.exec(doc);
  assert.ok(again, 'docs/baremetalhost.md shows how to reinstall');
  await kubectl('-n', 'metalbox-system', 'patch', 'bmh', host, '--type', 'merge', '-p', again[1]!);
});
