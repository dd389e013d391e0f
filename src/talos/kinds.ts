// The ResourceKinds the Talos side reads and writes, and the names it gives rendered Secrets.
import { BareMetalHostKind, TalosMachineConfigKind } from '../crds/index.ts';
import type { Resource, ResourceKind } from '../runtime/resource.ts';

const namespaced = (d: { group: string; version: string; kind: string; plural: string }): ResourceKind => ({
  group: d.group,
  version: d.version,
  kind: d.kind,
  plural: d.plural,
  namespaced: true,
});

export const HOST_KIND = namespaced(BareMetalHostKind);
export const TALOS_CONFIG_KIND = namespaced(TalosMachineConfigKind);
export const SECRET_KIND: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
};

/** core/v1 Secret, the fields used here. */
export interface SecretObject extends Resource {
  type?: string;
  data?: Record<string, string> | null;
  /** Write-only on a kube-apiserver (folded into data); other stores may keep it. */
  stringData?: Record<string, string> | null;
}

/** The key of the rendered config in its Secret. */
export const CONFIG_KEY = 'config.yaml';
/** Labels and annotations on rendered-config Secrets. */
export const RENDERED_LABEL = 'metalbox.io/talos-config-for';
export const HASH_ANNOTATION = 'metalbox.io/talos-config-hash';
export const SOURCE_ANNOTATION = 'metalbox.io/talos-machine-config';

/** Name of the Secret holding a host's rendered config. */
export const renderedSecretName = (host: string): string => `${host}-talos-config`;

/** The text of one key (data is base64, stringData plain); undefined when absent. */
export function secretText(secret: SecretObject, key: string): string | undefined {
  const plain = secret.stringData?.[key];
  if (typeof plain === 'string') return plain;
  const encoded = secret.data?.[key];
  return typeof encoded === 'string' ? Buffer.from(encoded, 'base64').toString('utf8') : undefined;
}
