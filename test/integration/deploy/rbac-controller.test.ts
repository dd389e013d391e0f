// deploy/'s RBAC is enough for the controllers as they are: `metalbox controller`, started with the
// Deployment's arguments as the metalbox-controller ServiceAccount, reconciles the seed fleet on a
// real kube-apiserver without one forbidden request (no informer failing to list, no write refused).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { BMH_FINALIZER } from '../../../src/crds/baremetalhost.ts';
import { CONTROLLER_NAMESPACE, type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import { scratchDir } from '../../env/peers.ts';
import { freePort } from '../../env/ports.ts';
import { type ManagedProcess, startProcess } from '../../env/process.ts';
import { waitFor } from '../../env/wait.ts';
import { deploymentArgs, loadDeployManifests, type Manifest } from '../../fixtures/deploy-manifests.ts';
import { applyManifests, collectionPath } from './apply.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const manifestsDir = new URL('../../../manifests/', import.meta.url);
const scratch = scratchDir('rbac-controller');
let kube: KubeApiserverPeer;
let proc: ManagedProcess | undefined;

const PLURALS: Record<string, string> = {
  BareMetalHost: 'baremetalhosts',
  MatchboxProfile: 'matchboxprofiles',
  MatchboxGroup: 'matchboxgroups',
  TalosMachineConfig: 'talosmachineconfigs',
};

before(async () => {
  kube = await startKubeApiserver();
  await applyManifests(kube, loadDeployManifests());
  for (const file of readdirSync(manifestsDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, manifestsDir), 'utf8'))) {
      const obj = doc.toJS() as Manifest;
      if (obj.kind === 'Namespace') continue;
      const plural = PLURALS[obj.kind];
      const path = plural
        ? `/apis/${obj.apiVersion}/namespaces/${obj.metadata.namespace}/${plural}`
        : collectionPath(obj);
      const res = await kube.request('POST', path, obj);
      assert.equal(res.status, 201, `${file} ${obj.metadata.name}: ${JSON.stringify(res.body)}`);
    }
  }
});
after(async () => {
  await proc?.kill();
  await kube?.stop();
  scratch.remove();
});

test('run as its ServiceAccount with the Deployment arguments, the controller reconciles the seed fleet without a forbidden request', async () => {
  const port = await freePort();
  proc = startProcess({
    name: 'controller',
    command: 'bash',
    args: [
      'scripts/node',
      'src/cli/main.ts',
      ...deploymentArgs().filter((a) => !/^--(metrics-addr|config)=/.test(a)),
      '--metrics-addr',
      `127.0.0.1:${port}`,
      '--kubeconfig',
      kube.kubeconfigFile('controller'),
    ],
    logDir: scratch.dir,
    cwd: repo,
  });
  const running = proc;
  const hostsPath = `/apis/metalbox.io/v1alpha1/namespaces/${CONTROLLER_NAMESPACE}/baremetalhosts`;
  // Every host gets the controller's finalizer (an update) and a status (the status subresource).
  await waitFor(
    async () => {
      const res = await kube.request('GET', hostsPath);
      const items = (
        res.body as {
          items: { metadata: { finalizers?: string[] }; status?: { provisioning?: { state?: string } } }[];
        }
      ).items;
      return (
        items.length === 5 &&
        items.every((h) => h.metadata.finalizers?.includes(BMH_FINALIZER) && h.status?.provisioning?.state)
      );
    },
    {
      what: 'every seed host to carry the finalizer and a status',
      timeoutMs: 60_000,
      intervalMs: 500,
      context: () => running.tail(20),
      abortIf: () => (running.isRunning() ? undefined : 'the controller exited'),
    },
  );
  const events = await kube.request('GET', `/api/v1/namespaces/${CONTROLLER_NAMESPACE}/events`);
  assert.ok((events.body as { items: unknown[] }).items.length > 0, 'Events were recorded');

  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(metrics, /^metalbox_leader 1$/m);
  assert.doesNotMatch(
    metrics,
    /^metalbox_informer_restarts_total\{[^}]*reason="error"[^}]*\} [1-9]/m,
    'no informer failed to list or watch',
  );
  assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200, 'every cache synced');
  const log = readFileSync(running.logFile, 'utf8');
  assert.doesNotMatch(log, /forbidden|HTTP 403/i, 'no request was refused by RBAC');
});
