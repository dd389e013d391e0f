// `kubectl apply -k deploy/` against a real kube-apiserver installs cleanly (no error, no warning,
// PodSecurity "restricted" included), is idempotent, and leaves the objects in place. No
// controller-manager runs, so the Deployment's pods are never created: this checks the install only.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { DEPLOY_DIR, loadDeployManifests } from '../../fixtures/deploy-manifests.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));

function findKubectl(): string | undefined {
  const candidates = [
    process.env.KUBECTL,
    '/usr/bin/kubectl',
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'kubectl')),
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

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

  const second = await kubectl('apply', '-k', DEPLOY_DIR);
  assert.equal(second.stderr.trim(), '');
  for (const line of second.stdout.trim().split('\n')) assert.match(line, / unchanged$/, second.stdout);

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
