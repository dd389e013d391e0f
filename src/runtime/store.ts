import type { FieldError } from './errors.ts';
import type { ObjectRef, Resource, ResourceKind } from './resource.ts';

/**
 * The one storage contract every backend (kube-apiserver, etcd, embedded SQLite) implements, with
 * Kubernetes semantics; test/conformance/store-suite.ts pins them. Errors are the classes of
 * errors.ts. resourceVersions are opaque strings: compare only for equality, pass them back.
 */
export interface ResourceStore {
  /** Throws NotFoundError. */
  get<T extends Resource>(kind: ResourceKind, ref: ObjectRef): Promise<T>;

  /** Items plus the list's resourceVersion, the point from which a watch continues without gaps. */
  list<T extends Resource>(kind: ResourceKind, options?: ListOptions): Promise<ResourceList<T>>;

  /**
   * Events strictly after `resourceVersion`, in order, then live ones, with periodic BOOKMARKs.
   * Errors surface while iterating: GoneError when the version is older than the store's history,
   * anything else when the stream breaks. The stream may also end cleanly (the server closed it);
   * the consumer then watches again from the last version it saw. Aborting `signal` or leaving
   * the loop ends the stream promptly.
   */
  watch<T extends Resource>(kind: ResourceKind, options: WatchOptions): AsyncIterable<WatchEvent<T>>;

  /**
   * Stores the object with a new uid, resourceVersion, generation 1 and creationTimestamp (any given
   * are ignored), without status (status is only written through the status calls).
   * Throws AlreadyExistsError, InvalidError.
   */
  create<T extends Resource>(kind: ResourceKind, obj: T): Promise<T>;

  /**
   * Replaces spec/metadata. metadata.resourceVersion is required and must be current (else
   * ConflictError). Status, uid, creationTimestamp, deletionTimestamp and generation are kept;
   * generation grows by one only when something outside metadata and status changed. An update that
   * changes nothing writes nothing and keeps the resourceVersion. On an object being deleted, new
   * finalizers are Invalid and removing the last finalizer removes the object.
   */
  update<T extends Resource>(kind: ResourceKind, obj: T): Promise<T>;

  /** Replaces only status (the status subresource); resourceVersion required and must be current. */
  updateStatus<T extends Resource>(kind: ResourceKind, obj: T): Promise<T>;

  /**
   * JSON merge patch (RFC 7386) of status: objects merge, `null` removes a field, arrays are
   * replaced. Unconditional unless `resourceVersion` is given.
   */
  patchStatus<T extends Resource>(
    kind: ResourceKind,
    ref: ObjectRef,
    patch: Record<string, unknown>,
    options?: { resourceVersion?: string },
  ): Promise<T>;

  /**
   * Without finalizers the object is removed. With finalizers, deletionTimestamp is set (once;
   * generation grows by one) and the object is removed when an update empties its finalizers.
   * Throws NotFoundError, ConflictError (failed precondition).
   */
  delete(kind: ResourceKind, ref: ObjectRef, options?: DeleteOptions): Promise<void>;

  /** Ends every watch and releases the backend (the embedded store first writes what is queued). */
  close(): Promise<void>;
}

export interface ListOptions {
  /** Only this namespace; all namespaces when absent. */
  namespace?: string;
  /** Equality-based label selector: every pair must match. */
  labelSelector?: Record<string, string>;
}

export interface ResourceList<T> {
  items: T[];
  resourceVersion: string;
}

export interface WatchOptions {
  namespace?: string;
  /** Required: from a list, an object or a previous event. */
  resourceVersion: string;
  signal?: AbortSignal;
}

export type WatchEvent<T extends Resource = Resource> =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: T }
  /** Nothing for this watch happened up to `resourceVersion`; resume from there. */
  | { type: 'BOOKMARK'; resourceVersion: string };

export interface DeleteOptions {
  /** Delete only if the object still has this uid / resourceVersion; otherwise ConflictError. */
  preconditions?: { uid?: string; resourceVersion?: string };
}

/** Schema validation hook (the CRD module supplies one); an empty list means valid. */
export type Validator = (obj: Resource, kind: ResourceKind) => FieldError[];
