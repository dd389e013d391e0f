/**
 * Kubernetes-shaped objects as the runtime sees them: generic over spec and status, identified by a
 * ResourceKind descriptor. Stores keep unknown top-level fields (an Event has no spec/status).
 */

export interface ResourceKind {
  /** API group; '' for the core group (v1 Event, Secret). */
  group: string;
  version: string;
  kind: string;
  /** Lower-case plural used in API paths and storage keys (`baremetalhosts`). */
  plural: string;
  namespaced: boolean;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  /** Opaque to callers; only compare for equality and pass back to update/watch. */
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface Resource<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: Status;
}

/** Identifies one object of a kind; namespace is absent for cluster-scoped kinds. */
export interface ObjectRef {
  namespace?: string;
  name: string;
}

export function apiVersionOf(kind: ResourceKind): string {
  return kind.group === '' ? kind.version : `${kind.group}/${kind.version}`;
}

/** `group/plural`: version-independent identity of a kind, as the apiserver stores it. */
export function resourceKey(kind: ResourceKind): string {
  return `${kind.group}/${kind.plural}`;
}

/** Work-queue and cache key: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(ref: ObjectRef): string {
  return ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}

export function parseObjectKey(key: string): ObjectRef {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export function refOf(obj: Resource): ObjectRef {
  const { name, namespace } = obj.metadata;
  return namespace ? { namespace, name } : { name };
}

/** `kind namespace/name`, for error messages and logs. */
export function describe(kind: ResourceKind, ref: ObjectRef): string {
  return `${kind.kind} ${objectKey(ref)}`;
}

/** Kubernetes timestamps are RFC 3339 with second precision. */
export function timestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A MicroTime (6 fractional digits), for fields that order things finer than a second. */
export function microTimestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/Z$/, '000Z');
}

export function matchesLabels(obj: Resource, selector: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  const labels = obj.metadata.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
