/** Finalizer helpers over any ResourceStore: read, change, write, and retry on conflict. */
import { isNotFound } from './errors.ts';
import type { ObjectRef, Resource, ResourceKind } from './resource.ts';
import { type RetryOptions, retryOnConflict } from './retry.ts';
import type { ResourceStore } from './store.ts';

export function hasFinalizer(obj: Resource, finalizer: string): boolean {
  return obj.metadata.finalizers?.includes(finalizer) ?? false;
}

/** Adds `finalizer` unless present; returns the stored object. Invalid once deletion has started. */
export function addFinalizer<T extends Resource>(
  store: ResourceStore,
  kind: ResourceKind,
  ref: ObjectRef,
  finalizer: string,
  retry?: RetryOptions,
): Promise<T> {
  return retryOnConflict(async () => {
    const obj = await store.get<T>(kind, ref);
    if (hasFinalizer(obj, finalizer)) return obj;
    obj.metadata.finalizers = [...(obj.metadata.finalizers ?? []), finalizer];
    return store.update(kind, obj);
  }, retry);
}

/**
 * Removes `finalizer` if present. When it was the last one on an object being deleted, the store
 * removes the object. An object already gone is fine.
 */
export function removeFinalizer(
  store: ResourceStore,
  kind: ResourceKind,
  ref: ObjectRef,
  finalizer: string,
  retry?: RetryOptions,
): Promise<void> {
  return retryOnConflict(async () => {
    let obj: Resource;
    try {
      obj = await store.get(kind, ref);
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    if (!hasFinalizer(obj, finalizer)) return;
    obj.metadata.finalizers = obj.metadata.finalizers!.filter((f) => f !== finalizer);
    try {
      await store.update(kind, obj);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }, retry);
}
