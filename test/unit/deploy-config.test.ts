// deploy/'s controller config and what the Deployment wires around it: the ConfigMap holds a
// config every family accepts, its TLS files are where the Matchbox client Secret is mounted
// (read-only), the Talos servers listen on the ports the Pod and the provisioning Service expose,
// the PodDisruptionBudget and the NetworkPolicy select the controller's Pods.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { parseMatchboxSyncConfig } from '../../src/controllers/matchbox/config.ts';
import { parseTalosConfig, splitHostPort } from '../../src/talos/config.ts';
import {
  DEPLOY_DIR,
  deploymentArgs,
  loadDeployManifests,
  type Manifest,
} from '../fixtures/deploy-manifests.ts';

const manifests = loadDeployManifests();
const one = (kind: string, name?: string): Manifest => {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  assert.equal(found.length, 1, `one ${kind} ${name ?? ''}`);
  return found[0] as Manifest;
};

interface PodSpecLike {
  securityContext: { fsGroup?: number };
  containers: {
    env: { name: string; valueFrom?: { fieldRef?: { apiVersion?: string; fieldPath: string } } }[];
    ports: { name: string; containerPort: number }[];
    volumeMounts: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  }[];
  volumes: {
    name: string;
    configMap?: { name: string };
    secret?: { secretName: string; defaultMode?: number; optional?: boolean };
  }[];
}
const deployment = one('Deployment') as unknown as {
  spec: { selector: { matchLabels: Record<string, string> }; template: { spec: PodSpecLike } };
};
const pod = deployment.spec.template.spec;
const container = pod.containers[0]!;
const configMap = one('ConfigMap', 'metalbox-controller-config') as unknown as {
  data: Record<string, string>;
};
const config = parse(configMap.data['controller.yaml'] ?? '') as { matchbox: unknown; talos: unknown };

const mountOf = (volume: string): PodSpecLike['containers'][number]['volumeMounts'][number] | undefined =>
  container.volumeMounts.find((m) => m.name === volume);
const port = (name: string) => container.ports.find((p) => p.name === name)?.containerPort;

test('the Deployment reads its config from the ConfigMap, and every family accepts that config', () => {
  const path = deploymentArgs()
    .find((a) => a.startsWith('--config='))
    ?.slice('--config='.length);
  assert.equal(path, '/etc/metalbox/controller.yaml');
  const volume = pod.volumes.find((v) => v.configMap?.name === 'metalbox-controller-config');
  assert.ok(volume, 'a volume of the ConfigMap');
  const mount = mountOf(volume.name);
  assert.equal(mount?.mountPath, path);
  assert.equal(mount?.subPath, 'controller.yaml');
  assert.equal(mount?.readOnly, true);
  parseMatchboxSyncConfig(config.matchbox);
  parseTalosConfig(config.talos);
});

test('the Matchbox client certificate comes from a Secret mounted read-only where the config looks', () => {
  const volume = pod.volumes.find((v) => v.secret?.secretName === 'metalbox-matchbox-client');
  assert.ok(volume);
  assert.equal(volume.secret?.defaultMode, 0o440, 'owner and group read, nobody else');
  assert.equal(pod.securityContext.fsGroup, 65532, 'the group is the controller user');
  const mount = mountOf(volume.name);
  assert.equal(mount?.readOnly, true);
  for (const endpoint of parseMatchboxSyncConfig(config.matchbox).endpoints) {
    const tls = endpoint.tls as { caFile: string; certFile: string; keyFile: string };
    assert.deepEqual(
      [tls.caFile, tls.certFile, tls.keyFile],
      ['ca.crt', 'tls.crt', 'tls.key'].map((key): string => `${mount?.mountPath}/${key}`),
    );
  }
});

test('the Talos config server and event sink listen on the ports the Pod and the provisioning Service expose', () => {
  const talos = parseTalosConfig(config.talos);
  assert.equal(splitHostPort(talos.configServer.listen).port, port('talos-config'));
  assert.equal(splitHostPort(talos.eventSink.listen).port, port('event-sink'));
  const service = one('Service', 'metalbox-provisioning') as unknown as {
    spec: {
      type: string;
      externalTrafficPolicy: string;
      selector: Record<string, string>;
      ports: { targetPort: string; nodePort: number }[];
    };
  };
  // The servers tell hosts apart by their source address: it must not be rewritten on the way.
  assert.equal(service.spec.externalTrafficPolicy, 'Local');
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
  const nodePort = (target: string): number | undefined =>
    service.spec.ports.find((p) => p.targetPort === target)?.nodePort;
  assert.equal(new URL(talos.configServer.advertiseURL ?? '').port, String(nodePort('talos-config')));
  assert.equal(talos.eventSink.advertiseAddress?.split(':')[1], String(nodePort('event-sink')));
});

test('the POD_NAMESPACE fieldRef names its apiVersion, so server-side apply sees no change', () => {
  const env = container.env.find((e) => e.name === 'POD_NAMESPACE');
  assert.equal(env?.valueFrom?.fieldRef?.apiVersion, 'v1');
});

test('the PodDisruptionBudget and the NetworkPolicy select the controller Pods; the policy opens only their ports', () => {
  const pdb = one('PodDisruptionBudget') as unknown as {
    spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
  };
  assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  assert.equal(pdb.spec.maxUnavailable, 1);
  const policy = one('NetworkPolicy') as unknown as {
    spec: { podSelector: { matchLabels: Record<string, string> }; ingress: { ports: { port: string }[] }[] };
  };
  assert.deepEqual(policy.spec.podSelector.matchLabels, deployment.spec.selector.matchLabels);
  const opened = policy.spec.ingress.flatMap((rule) => rule.ports.map((p) => p.port)).sort();
  assert.deepEqual(opened, container.ports.map((p) => p.name).sort());
});

test('the optional ServiceMonitor component scrapes the metrics Service by its port name', () => {
  const dir = join(DEPLOY_DIR, 'components/servicemonitor');
  const component = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as {
    kind: string;
    resources: string[];
  };
  assert.equal(component.kind, 'Component');
  const monitor = parse(readFileSync(join(dir, component.resources[0] ?? ''), 'utf8')) as {
    kind: string;
    spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
  };
  assert.equal(monitor.kind, 'ServiceMonitor');
  const services = manifests.filter(
    (m) =>
      m.kind === 'Service' &&
      Object.entries(monitor.spec.selector.matchLabels).every(
        ([k, v]) => (m.metadata.labels as Record<string, string> | undefined)?.[k] === v,
      ),
  ) as unknown as { metadata: { name: string }; spec: { ports: { name: string }[] } }[];
  const scraped = services.filter((s) =>
    s.spec.ports.some((p) => p.name === monitor.spec.endpoints[0]?.port),
  );
  assert.deepEqual(
    scraped.map((s) => s.metadata.name),
    ['metalbox-controller-metrics'],
  );
});
