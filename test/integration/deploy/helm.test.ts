// One source of truth: the Helm chart (deploy/helm/metalbox) with its default values renders the
// very objects `kubectl apply -k deploy/` installs, and its CRDs are deploy/crds' own files. Differs
// only where Helm must: the Pod template's checksum/config annotation (which rolls the Pods on a
// config change) and the config's YAML layout (compared parsed). The chart is rendered with the
// real helm (built by scripts/setup), the base with kubectl's kustomize.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { findKubectl } from '../../env/kubectl.ts';
import { peerBinary } from '../../env/peers.ts';
import { DEPLOY_DIR, type Manifest } from '../../fixtures/deploy-manifests.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = join(DEPLOY_DIR, 'helm/metalbox');

type Obj = Manifest & {
  data?: Record<string, string>;
  spec?: { template?: { metadata?: { annotations?: Record<string, string> } } };
};

function objects(yamlText: string): Map<string, Obj> {
  const out = new Map<string, Obj>();
  for (const doc of parseAllDocuments(yamlText)) {
    const obj = doc.toJS() as Obj | null;
    if (!obj) continue;
    const key = `${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    assert.ok(!out.has(key), `${key} rendered twice`);
    out.set(key, obj);
  }
  return out;
}

/** What may differ by design: Helm's checksum annotation; the config file's formatting. */
function normalize(obj: Obj): unknown {
  const copy = structuredClone(obj);
  const annotations = copy.spec?.template?.metadata?.annotations;
  if (annotations) {
    delete annotations['checksum/config'];
    if (Object.keys(annotations).length === 0) delete copy.spec?.template?.metadata?.annotations;
  }
  if (copy.kind === 'ConfigMap' && copy.data) {
    return { ...copy, data: Object.fromEntries(Object.entries(copy.data).map(([k, v]) => [k, parse(v)])) };
  }
  return copy;
}

async function helmTemplate(...set: string[]): Promise<string> {
  const { stdout } = await run(
    peerBinary('helm'),
    ['template', 'metalbox', CHART, '--include-crds', ...set.flatMap((s) => ['--set', s])],
    { cwd: repo, maxBuffer: 32 * 1024 * 1024 },
  );
  return stdout;
}

test('helm template with the default values gives the objects of kubectl kustomize deploy/', async () => {
  const kubectl = findKubectl();
  assert.ok(kubectl, 'kubectl is not installed');
  const kustomized = objects(
    (await run(kubectl, ['kustomize', DEPLOY_DIR], { maxBuffer: 32 * 1024 * 1024 })).stdout,
  );
  const charted = objects(await helmTemplate());
  assert.deepEqual([...charted.keys()].sort(), [...kustomized.keys()].sort(), 'the same objects');
  for (const [key, obj] of kustomized) {
    assert.deepEqual(
      normalize(charted.get(key) as Obj),
      normalize(obj),
      `${key} differs between chart and deploy/`,
    );
  }
  const deployment = [...charted.values()].find((o) => o.kind === 'Deployment');
  assert.match(
    deployment?.spec?.template?.metadata?.annotations?.['checksum/config'] ?? '',
    /^[0-9a-f]{64}$/,
  );
});

test("the chart's CRDs are deploy/crds' files (links), one for every CRD", () => {
  const crds = readdirSync(join(DEPLOY_DIR, 'crds')).filter((f) => f.endsWith('.metalbox.io.yaml'));
  assert.deepEqual(readdirSync(join(CHART, 'crds')).sort(), crds.sort());
  for (const f of crds)
    assert.equal(realpathSync(join(CHART, 'crds', f)), realpathSync(join(DEPLOY_DIR, 'crds', f)));
});

test("the chart's version and appVersion are package.json's, and the image tag deploy/ pins", () => {
  const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as {
    version: string;
    appVersion: string;
  };
  const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string })
    .version;
  const kustomization = parse(readFileSync(join(DEPLOY_DIR, 'kustomization.yaml'), 'utf8')) as {
    images: { name: string; newTag: string }[];
  };
  assert.equal(chart.version, version);
  assert.equal(chart.appVersion, version);
  assert.equal(kustomization.images.find((i) => i.name === 'metalbox')?.newTag, version);
});

test('values change what they name: namespace, replicas, image, endpoints, advertise addresses, certificate, ServiceMonitor', async () => {
  const rendered = objects(
    await helmTemplate(
      'namespace=metal',
      'replicas=3',
      'image.repository=registry.example/metalbox',
      'image.tag=9.9.9',
      'config.talos.configServer.advertiseURL=http://10.0.20.5:30081',
      'config.matchbox.endpoints[0].endpoint=10.0.20.11:8081',
      'matchboxClientSecret.create=true',
      'matchboxClientSecret.ca=CA',
      'matchboxClientSecret.cert=CERT',
      'matchboxClientSecret.key=KEY',
      'serviceMonitor.enabled=true',
    ),
  );
  const namespaced = [...rendered.values()].filter((o) => o.metadata.namespace !== undefined);
  assert.ok(namespaced.length > 0);
  for (const o of namespaced) assert.equal(o.metadata.namespace, 'metal', `${o.kind}/${o.metadata.name}`);
  assert.ok(rendered.has('Namespace//metal'));
  const deployment = rendered.get('Deployment/metal/metalbox-controller') as unknown as {
    spec: { replicas: number; template: { spec: { containers: { image: string }[] } } };
  };
  assert.equal(deployment.spec.replicas, 3);
  assert.equal(deployment.spec.template.spec.containers[0]?.image, 'registry.example/metalbox:9.9.9');
  const config = parse(
    rendered.get('ConfigMap/metal/metalbox-controller-config')?.data?.['controller.yaml'] ?? '',
  ) as {
    matchbox: { endpoints: { endpoint: string }[] };
    talos: { configServer: { advertiseURL: string } };
  };
  assert.equal(config.matchbox.endpoints[0]?.endpoint, '10.0.20.11:8081');
  assert.equal(config.talos.configServer.advertiseURL, 'http://10.0.20.5:30081');
  const secret = rendered.get('Secret/metal/metalbox-matchbox-client');
  assert.deepEqual(secret?.data, { 'ca.crt': 'Q0E=', 'tls.crt': 'Q0VSVA==', 'tls.key': 'S0VZ' });
  // The ServiceMonitor is the kustomize component's, in the chosen namespace.
  const component = parse(
    readFileSync(join(DEPLOY_DIR, 'components/servicemonitor/servicemonitor.yaml'), 'utf8'),
  ) as Obj;
  assert.deepEqual(rendered.get('ServiceMonitor/metal/metalbox-controller'), {
    ...component,
    metadata: { ...component.metadata, namespace: 'metal' },
  });
});
