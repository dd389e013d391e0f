// deploy/ agrees with the controller it runs: the Deployment's arguments are accepted by
// `metalbox controller`'s own flag parser, the probes hit its ops port, and the pod is locked down.
// (What the RBAC allows is proven on a real apiserver in test/integration/deploy/rbac.test.ts.)
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { parseControllerFlags } from '../../src/cli/controller-flags.ts';
import {
  DEPLOY_DIR,
  type DeploymentLike,
  deploymentArgs,
  loadDeployManifests,
  type PolicyRule,
} from '../fixtures/deploy-manifests.ts';

const manifests = loadDeployManifests();
const byKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const deployment = byKind('Deployment')[0] as unknown as DeploymentLike & { metadata: { namespace: string } };
const container = deployment.spec.template.spec.containers[0]!;

const args = deploymentArgs(manifests);

test('every YAML file under deploy/ is listed in its kustomization (none is silently left out)', () => {
  for (const dir of ['', 'rbac', 'manager', 'crds']) {
    const k = parse(readFileSync(join(DEPLOY_DIR, dir, 'kustomization.yaml'), 'utf8')) as {
      resources: string[];
    };
    const files = readdirSync(join(DEPLOY_DIR, dir)).filter(
      (f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml',
    );
    for (const f of files)
      assert.ok(k.resources.includes(f), `deploy/${dir}/${f} is not in its kustomization`);
  }
});

test('the Deployment runs 2 replicas of `metalbox controller --store=kube --leader-elect`, flags accepted by the CLI', () => {
  assert.equal(deployment.spec.replicas, 2);
  assert.deepEqual(container.command, ['metalbox']);
  const [subcommand, ...flags] = args;
  assert.equal(subcommand, 'controller');
  const parsed = parseControllerFlags(flags);
  assert.equal(parsed.help, false);
  assert.ok(!parsed.help);
  assert.deepEqual(parsed.flags.store, { type: 'kube' });
  assert.equal(parsed.flags.leaderElect, true);
  assert.equal(parsed.flags.leaderElectionNamespace, 'metalbox-system');
  // Controllers watch Secrets: the namespace watched must be one where the RBAC lets it read them.
  assert.equal(parsed.flags.namespace, 'metalbox-system');
  // The Lease the controller uses is the one its Role lets it write.
  const leaseRole = byKind('Role').find((r) =>
    (r.rules as PolicyRule[]).some((rule) => rule.resources?.includes('leases')),
  );
  assert.equal(leaseRole?.metadata.namespace, parsed.flags.leaderElectionNamespace);
  assert.match(container.image, /^metalbox:\d+\.\d+\.\d+$/);
});

test('liveness and readiness probe /healthz and /readyz on the port --metrics-addr listens on', () => {
  const parsed = parseControllerFlags(args.slice(1));
  assert.ok(!parsed.help);
  const opsPort = container.ports?.find((p) => p.name === container.livenessProbe?.httpGet?.port);
  assert.ok(opsPort, 'the liveness probe names a declared container port');
  assert.equal(opsPort.containerPort, parsed.flags.metricsAddr.port);
  // The default is loopback, which the kubelet's probes on the pod IP would never reach.
  assert.ok(
    args.some((a) => a.startsWith('--metrics-addr=')),
    'the Deployment sets --metrics-addr',
  );
  assert.equal(parsed.flags.metricsAddr.host, '0.0.0.0');
  assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
  assert.equal(container.readinessProbe?.httpGet?.port, opsPort.name);
  const service = byKind('Service').find(
    (s) => s.metadata.name === 'metalbox-controller-metrics',
  ) as unknown as {
    spec: { selector: Record<string, string>; ports: { targetPort: string | number }[] };
  };
  assert.ok(service, 'a metrics Service exists');
  assert.equal(service.spec.ports[0]?.targetPort, opsPort.name);
  for (const [k, v] of Object.entries(service.spec.selector)) {
    assert.equal(deployment.spec.template.metadata.labels[k], v, `the Service selects the pods by ${k}`);
  }
});

test('the pod runs as non-root on a read-only root filesystem, without privilege escalation, with requests', () => {
  const pod = deployment.spec.template.spec;
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.ok((pod.securityContext?.runAsUser ?? 0) > 0);
  assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  const sc = container.securityContext;
  assert.equal(sc?.readOnlyRootFilesystem, true);
  assert.equal(sc?.allowPrivilegeEscalation, false);
  assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
  assert.ok(container.resources?.requests?.cpu, 'a CPU request');
  assert.ok(container.resources?.requests?.memory, 'a memory request');
  // Graceful shutdown waits up to 30 s for in-flight reconciles; the kubelet must wait longer.
  assert.ok((pod.terminationGracePeriodSeconds ?? 30) > 30);
});

test('the pod runs as the ServiceAccount the RBAC binds, and no rule uses a wildcard', () => {
  const sa = byKind('ServiceAccount')[0]!;
  assert.equal(deployment.spec.template.spec.serviceAccountName, sa.metadata.name);
  assert.equal(sa.metadata.namespace, deployment.metadata.namespace);
  for (const binding of [...byKind('ClusterRoleBinding'), ...byKind('RoleBinding')]) {
    const subjects = binding.subjects as { kind: string; name: string; namespace: string }[];
    assert.deepEqual(subjects, [
      { kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace },
    ]);
  }
  for (const role of [...byKind('ClusterRole'), ...byKind('Role')]) {
    for (const rule of role.rules as PolicyRule[]) {
      for (const field of [rule.verbs, rule.resources ?? [], rule.apiGroups ?? []]) {
        assert.ok(!field.includes('*'), `${role.kind} ${role.metadata.name} uses a wildcard`);
      }
    }
  }
});

test('Secrets are granted only by RoleBindings in the controller namespace, never cluster-wide', () => {
  const grantsSecrets = (roleName: string) =>
    manifests.some(
      (m) =>
        (m.kind === 'ClusterRole' || m.kind === 'Role') &&
        m.metadata.name === roleName &&
        (m.rules as PolicyRule[]).some((r) => r.resources?.includes('secrets')),
    );
  for (const b of byKind('ClusterRoleBinding')) {
    const roleRef = b.roleRef as { name: string };
    assert.ok(
      !grantsSecrets(roleRef.name),
      `ClusterRoleBinding ${b.metadata.name} grants Secrets cluster-wide`,
    );
  }
  const secretBindings = byKind('RoleBinding').filter((b) =>
    grantsSecrets((b.roleRef as { name: string }).name),
  );
  assert.ok(secretBindings.length > 0);
  for (const b of secretBindings) assert.equal(b.metadata.namespace, 'metalbox-system');
});
