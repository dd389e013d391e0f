/**
 * The apiserver's object rules for stores that are not an apiserver (file, etcd): what create,
 * update, status update and delete do to metadata, generation and finalizers. Pure functions over
 * JSON-shaped objects; the caller assigns resourceVersions and persists.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { type FieldError, InvalidError } from '../runtime/errors.ts';
import {
  apiVersionOf,
  describe,
  type ObjectMeta,
  type Resource,
  type ResourceKind,
  refOf,
  timestamp,
} from '../runtime/resource.ts';
import type { Validator } from '../runtime/store.ts';

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A JSON copy: drops undefined members so comparisons see what a store would persist. */
export function jsonClone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** A fresh, normalized, validated object ready to be stored (resourceVersion still unset). */
export function prepareCreate(
  kind: ResourceKind,
  input: Resource,
  now: Date,
  validator?: Validator,
): Resource {
  const obj = normalize(kind, jsonClone(input));
  const meta = obj.metadata;
  delete obj.status;
  delete meta.resourceVersion;
  delete meta.deletionTimestamp;
  delete meta.deletionGracePeriodSeconds;
  meta.uid = randomUUID();
  meta.generation = 1;
  meta.creationTimestamp = timestamp(now);
  check(kind, obj, validator);
  return obj;
}

export interface Prepared {
  next: Resource;
  /** False when the write would store exactly what is there: the store then writes nothing. */
  changed: boolean;
  /** True when deletion was pending and the last finalizer is gone: remove instead of storing. */
  remove: boolean;
}

/** Main-resource update: keeps status and system metadata, bumps generation on a content change. */
export function prepareUpdate(
  kind: ResourceKind,
  current: Resource,
  input: Resource,
  validator?: Validator,
): Prepared {
  const next = normalize(kind, jsonClone(input));
  const meta = next.metadata;
  const old = current.metadata;
  copySystemMeta(old, meta);
  if (current.status === undefined) delete next.status;
  else next.status = current.status;
  if (old.deletionTimestamp) {
    const added = (meta.finalizers ?? []).filter((f) => !(old.finalizers ?? []).includes(f));
    if (added.length > 0) {
      throw new InvalidError(describe(kind, refOf(current)), [
        {
          path: 'metadata.finalizers',
          message: 'no new finalizers can be added if the object is being deleted',
        },
      ]);
    }
  }
  if (!isDeepStrictEqual(content(next), content(current))) meta.generation = (old.generation ?? 0) + 1;
  check(kind, next, validator);
  return finish(current, next);
}

/** Status-subresource update: everything but status stays as stored. */
export function prepareStatusUpdate(
  kind: ResourceKind,
  current: Resource,
  status: unknown,
  validator?: Validator,
): Prepared {
  const next = jsonClone(current);
  if (status === undefined || status === null) delete next.status;
  else next.status = jsonClone(status);
  check(kind, next, validator);
  return finish(current, next);
}

export type DeleteAction = { action: 'remove' } | { action: 'mark'; next: Resource } | { action: 'none' };

/** Delete: remove at once without finalizers, else mark deletionTimestamp once (generation + 1). */
export function prepareDelete(current: Resource, now: Date): DeleteAction {
  if ((current.metadata.finalizers ?? []).length === 0) return { action: 'remove' };
  if (current.metadata.deletionTimestamp) return { action: 'none' };
  const next = jsonClone(current);
  next.metadata.deletionTimestamp = timestamp(now);
  next.metadata.deletionGracePeriodSeconds = 0;
  next.metadata.generation = (current.metadata.generation ?? 0) + 1;
  return { action: 'mark', next };
}

function finish(current: Resource, next: Resource): Prepared {
  next.metadata.resourceVersion = current.metadata.resourceVersion;
  const changed = !isDeepStrictEqual(next, current);
  const remove =
    changed && !!next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0;
  return { next, changed, remove };
}

function copySystemMeta(from: ObjectMeta, to: ObjectMeta): void {
  for (const key of [
    'uid',
    'creationTimestamp',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
    'generation',
  ] as const) {
    if (from[key] === undefined) delete to[key];
    else (to as unknown as Record<string, unknown>)[key] = from[key];
  }
}

/** Everything outside metadata and status: what a generation counts. */
function content(obj: Resource): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

/** Fills apiVersion/kind, drops a namespace on cluster-scoped kinds, omits empty metadata lists. */
function normalize(kind: ResourceKind, obj: Resource): Resource {
  obj.apiVersion ??= apiVersionOf(kind);
  obj.kind ??= kind.kind;
  obj.metadata ??= { name: '' };
  const meta = obj.metadata;
  if (!kind.namespaced) delete meta.namespace;
  for (const key of ['finalizers', 'ownerReferences'] as const) {
    if (meta[key]?.length === 0) delete meta[key];
  }
  for (const key of ['labels', 'annotations'] as const) {
    if (meta[key] && Object.keys(meta[key]).length === 0) delete meta[key];
  }
  if (meta.finalizers) meta.finalizers = [...new Set(meta.finalizers)];
  return obj;
}

function check(kind: ResourceKind, obj: Resource, validator?: Validator): void {
  const errors: FieldError[] = [];
  const meta = obj.metadata;
  if (obj.apiVersion !== apiVersionOf(kind)) {
    errors.push({ path: 'apiVersion', message: `must be ${apiVersionOf(kind)}` });
  }
  if (obj.kind !== kind.kind) errors.push({ path: 'kind', message: `must be ${kind.kind}` });
  if (!meta.name) errors.push({ path: 'metadata.name', message: 'is required' });
  else if (meta.name.length > 253 || !SUBDOMAIN.test(meta.name)) {
    errors.push({
      path: 'metadata.name',
      message: 'must be a lower-case RFC 1123 subdomain (a-z, 0-9, "-", "."; at most 253 characters)',
    });
  }
  if (kind.namespaced) {
    if (!meta.namespace) errors.push({ path: 'metadata.namespace', message: 'is required' });
    else if (meta.namespace.length > 63 || !LABEL.test(meta.namespace)) {
      errors.push({ path: 'metadata.namespace', message: 'must be a lower-case RFC 1123 label' });
    }
  }
  if (errors.length === 0 && validator) errors.push(...validator(obj, kind));
  if (errors.length > 0) throw new InvalidError(describe(kind, refOf(obj)), errors);
}
