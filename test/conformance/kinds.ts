/**
 * The kinds the store conformance suite writes, and their CRDs for stores backed by a real
 * kube-apiserver (install them before running the suite there).
 */
import type { Resource, ResourceKind } from '../../src/runtime/resource.ts';

export const GROUP = 'conformance.metalbox.dev';

/** Namespaced, with a status subresource. */
export const Widget: ResourceKind = {
  group: GROUP,
  version: 'v1',
  kind: 'Widget',
  plural: 'widgets',
  namespaced: true,
};

/** Cluster-scoped, with a status subresource. */
export const Gadget: ResourceKind = {
  group: GROUP,
  version: 'v1',
  kind: 'Gadget',
  plural: 'gadgets',
  namespaced: false,
};

export interface WidgetSpec {
  size?: number;
  color?: string;
  tags?: string[];
}

export interface WidgetStatus {
  phase?: string;
  observedGeneration?: number;
  detail?: { a?: number; b?: number };
}

export type WidgetObject = Resource<WidgetSpec, WidgetStatus>;

/** apiextensions.k8s.io/v1 CRDs for Widget and Gadget: free-form spec/status, status subresource. */
export function conformanceCrds(): Record<string, unknown>[] {
  return [Widget, Gadget].map((k) => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${k.group}` },
    spec: {
      group: k.group,
      scope: k.namespaced ? 'Namespaced' : 'Cluster',
      names: { kind: k.kind, plural: k.plural, singular: k.kind.toLowerCase(), listKind: `${k.kind}List` },
      versions: [
        {
          name: k.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
            },
          },
        },
      ],
    },
  }));
}
