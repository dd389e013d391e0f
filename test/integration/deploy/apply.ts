// Creates (or replaces) deploy/'s objects on a test apiserver through its REST API, as an admin:
// CRDs through installCRDs (which waits for discovery), everything else by its collection path.
import type { CrdLike, KubeApiserverPeer } from '../../env/kube.ts';
import type { Manifest } from '../../fixtures/deploy-manifests.ts';

const PLURALS: Record<string, string> = {
  Namespace: 'namespaces',
  ServiceAccount: 'serviceaccounts',
  Service: 'services',
  Secret: 'secrets',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  Deployment: 'deployments',
  ConfigMap: 'configmaps',
  PodDisruptionBudget: 'poddisruptionbudgets',
  NetworkPolicy: 'networkpolicies',
};

/** REST path of the collection an object belongs to. */
export function collectionPath(obj: Manifest): string {
  const plural = PLURALS[obj.kind];
  if (!plural) throw new Error(`no REST path known for ${obj.apiVersion} ${obj.kind}`);
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  return obj.metadata.namespace
    ? `${base}/namespaces/${obj.metadata.namespace}/${plural}`
    : `${base}/${plural}`;
}

export async function applyManifests(kube: KubeApiserverPeer, manifests: Manifest[]): Promise<void> {
  const plain = manifests.map(
    ({ source: _source, ...obj }: Manifest & { source?: string }) => obj as Manifest,
  );
  await kube.installCRDs(plain.filter((m) => m.kind === 'CustomResourceDefinition') as unknown as CrdLike[]);
  // Namespaces first, as kubectl orders them.
  const rest = plain
    .filter((m) => m.kind !== 'CustomResourceDefinition')
    .sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
  for (const obj of rest) {
    const path = collectionPath(obj);
    const created = await kube.request('POST', path, obj);
    if (created.status === 201) continue;
    if (created.status !== 409) {
      throw new Error(
        `creating ${obj.kind} ${obj.metadata.name}: HTTP ${created.status} ${JSON.stringify(created.body)}`,
      );
    }
    const current = await kube.request('GET', `${path}/${obj.metadata.name}`);
    const resourceVersion = (current.body as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion;
    const replaced = await kube.request('PUT', `${path}/${obj.metadata.name}`, {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion },
    });
    if (replaced.status !== 200) {
      throw new Error(
        `replacing ${obj.kind} ${obj.metadata.name}: HTTP ${replaced.status} ${JSON.stringify(replaced.body)}`,
      );
    }
  }
}
