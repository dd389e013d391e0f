// ResourceStore on a real kube-apiserver through @kubernetes/client-node: the generic object API
// for CRUD on any kind, the custom-objects API for the status subresource, and client-node's Watch.
import {
  ApiException,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node';
import { Channel } from '../runtime/channel.ts';
import {
  AlreadyExistsError,
  ConflictError,
  type FieldError,
  GoneError,
  InvalidError,
  NotFoundError,
} from '../runtime/errors.ts';
import {
  apiVersionOf,
  describe,
  type ObjectRef,
  type Resource,
  type ResourceKind,
  timestamp,
} from '../runtime/resource.ts';
import type {
  DeleteOptions,
  ListOptions,
  ResourceList,
  ResourceStore,
  WatchEvent,
  WatchOptions,
} from '../runtime/store.ts';

export interface KubeStoreOptions {
  kubeConfig: KubeConfig;
  /** Field manager recorded on every write (never a shared hard-coded name). */
  fieldManager?: string;
}

export class KubeStore implements ResourceStore {
  readonly #objects: KubernetesObjectApi;
  readonly #custom: CustomObjectsApi;
  readonly #watch: Watch;
  readonly #fieldManager: string;
  readonly #watches = new Set<AbortController>();

  constructor(options: KubeStoreOptions) {
    this.#objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
    this.#custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#watch = new Watch(options.kubeConfig);
    this.#fieldManager = options.fieldManager ?? 'metalbox';
  }

  async get<T extends Resource>(kind: ResourceKind, ref: ObjectRef): Promise<T> {
    return this.#call(kind, ref, async () =>
      plain<T>(
        await this.#objects.read(header(kind, ref) as KubernetesObject & { metadata: { name: string } }),
      ),
    );
  }

  async list<T extends Resource>(kind: ResourceKind, options: ListOptions = {}): Promise<ResourceList<T>> {
    return this.#call(kind, { name: '*', namespace: options.namespace }, async () => {
      const labelSelector = options.labelSelector
        ? Object.entries(options.labelSelector)
            .map(([k, v]) => `${k}=${v}`)
            .join(',')
        : undefined;
      const list = await this.#objects.list(
        apiVersionOf(kind),
        kind.kind,
        options.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector,
      );
      // List items omit apiVersion/kind; callers expect whole objects.
      const items = list.items.map((item) => ({
        ...plain<T>(item),
        apiVersion: apiVersionOf(kind),
        kind: kind.kind,
      }));
      return { items, resourceVersion: list.metadata?.resourceVersion ?? '' };
    });
  }

  watch<T extends Resource>(kind: ResourceKind, options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    const channel = new Channel<WatchEvent<T>>(options.signal);
    const path = collectionPath(kind, options.namespace);
    let controller: AbortController | undefined;
    const stop = () => controller?.abort();
    // Aborting, a consumer leaving the loop, or a failure all end the HTTP watch.
    channel.onClose(stop);
    this.#watch
      .watch(
        path,
        { resourceVersion: options.resourceVersion, allowWatchBookmarks: true },
        (phase, apiObj: unknown) => {
          if (phase === 'BOOKMARK') {
            const rv = (apiObj as Resource).metadata?.resourceVersion ?? '';
            channel.push({ type: 'BOOKMARK', resourceVersion: rv });
          } else if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') {
            channel.push({ type: phase, object: plain<T>(apiObj) });
          } else if (phase === 'ERROR') {
            const status = apiObj as { code?: number; message?: string };
            channel.fail(
              status.code === 410
                ? new GoneError(status.message ?? `${kind.plural} from ${options.resourceVersion}`)
                : new Error(`watch ${kind.plural}: ${status.message ?? 'error event'}`),
            );
            stop();
          }
        },
        (error: unknown) => {
          if (controller) this.#watches.delete(controller);
          if (error && !options.signal?.aborted && !isAbort(error))
            channel.fail(toStoreError(kind, { name: '*' }, error));
          else channel.close();
        },
      )
      .then(
        (ac) => {
          controller = ac;
          this.#watches.add(ac);
          if (channel.closed) ac.abort();
        },
        (error: unknown) => channel.fail(toStoreError(kind, { name: '*' }, error)),
      );
    return channel;
  }

  async create<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const body = withoutStatus({ ...obj, apiVersion: apiVersionOf(kind), kind: kind.kind });
    return this.#call(kind, obj.metadata, async () =>
      plain<T>(
        await this.#objects.create(body as KubernetesObject, undefined, undefined, this.#fieldManager),
      ),
    );
  }

  async update<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const body = withoutServerFields({ ...obj, apiVersion: apiVersionOf(kind), kind: kind.kind });
    return this.#call(kind, obj.metadata, async () =>
      plain<T>(
        await this.#objects.replace(body as KubernetesObject, undefined, undefined, this.#fieldManager),
      ),
    );
  }

  async updateStatus<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    const ref = obj.metadata;
    const body = withoutServerFields({ ...obj, apiVersion: apiVersionOf(kind), kind: kind.kind });
    return this.#call(kind, ref, async () => {
      const common = { group: kind.group, version: kind.version, plural: kind.plural, name: ref.name, body };
      const result = ref.namespace
        ? await this.#custom.replaceNamespacedCustomObjectStatus({
            ...common,
            namespace: ref.namespace,
            fieldManager: this.#fieldManager,
          })
        : await this.#custom.replaceClusterCustomObjectStatus({
            ...common,
            fieldManager: this.#fieldManager,
          });
      return plain<T>(result);
    });
  }

  async patchStatus<T extends Resource>(
    kind: ResourceKind,
    ref: ObjectRef,
    patch: Record<string, unknown>,
    options: { resourceVersion?: string } = {},
  ): Promise<T> {
    const body: Record<string, unknown> = { status: patch };
    if (options.resourceVersion) body.metadata = { resourceVersion: options.resourceVersion };
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    return this.#call(kind, ref, async () => {
      const common = { group: kind.group, version: kind.version, plural: kind.plural, name: ref.name, body };
      const result = ref.namespace
        ? await this.#custom.patchNamespacedCustomObjectStatus(
            { ...common, namespace: ref.namespace, fieldManager: this.#fieldManager },
            merge,
          )
        : await this.#custom.patchClusterCustomObjectStatus(
            { ...common, fieldManager: this.#fieldManager },
            merge,
          );
      return plain<T>(result);
    });
  }

  async delete(kind: ResourceKind, ref: ObjectRef, options: DeleteOptions = {}): Promise<void> {
    await this.#call(kind, ref, async () => {
      await this.#objects.delete(
        header(kind, ref) as KubernetesObject,
        undefined,
        undefined,
        undefined,
        undefined,
        // Children go through ownerReferences and metalbox's own finalizers; let the GC (if any) run in background.
        'Background',
        options.preconditions ? { preconditions: options.preconditions } : undefined,
      );
    });
  }

  async close(): Promise<void> {
    for (const ac of this.#watches) ac.abort();
    this.#watches.clear();
  }

  async #call<R>(kind: ResourceKind, ref: ObjectRef, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (error) {
      throw toStoreError(kind, ref, error);
    }
  }
}

function header(kind: ResourceKind, ref: ObjectRef) {
  return {
    apiVersion: apiVersionOf(kind),
    kind: kind.kind,
    metadata: { name: ref.name, namespace: ref.namespace },
  };
}

function collectionPath(kind: ResourceKind, namespace: string | undefined): string {
  const base = kind.group === '' ? `/api/${kind.version}` : `/apis/${kind.group}/${kind.version}`;
  return kind.namespaced && namespace
    ? `${base}/namespaces/${namespace}/${kind.plural}`
    : `${base}/${kind.plural}`;
}

/**
 * client-node deserialises metadata timestamps (and core kinds' fields) into Dates; the runtime
 * works on plain JSON with Kubernetes' second-precision timestamps.
 */
function plain<T>(value: unknown): T {
  return JSON.parse(
    JSON.stringify(value, function (this: Record<string, unknown>, key, json: unknown) {
      const original = this[key];
      return original instanceof Date ? timestamp(original) : json;
    }),
  ) as T;
}

/** uid, generation and timestamps belong to the server; sent back they would act as preconditions. */
function withoutServerFields<T extends Resource>(obj: T): T {
  const {
    uid: _uid,
    generation: _gen,
    creationTimestamp: _ct,
    deletionTimestamp: _dt,
    ...metadata
  } = obj.metadata;
  return { ...obj, metadata };
}

function withoutStatus<T extends Resource>(obj: T): T {
  const { status: _status, ...rest } = obj;
  return rest as T;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || /aborted/i.test(error.message));
}

interface StatusBody {
  reason?: string;
  message?: string;
  details?: { causes?: { field?: string; message?: string }[] };
}

/** Maps apiserver failures onto the runtime's typed errors; anything else passes through. */
export function toStoreError(kind: ResourceKind, ref: ObjectRef, error: unknown): unknown {
  if (!(error instanceof ApiException)) return error;
  const what = describe(kind, ref);
  let body: StatusBody = {};
  try {
    body = (typeof error.body === 'string' ? JSON.parse(error.body) : error.body) as StatusBody;
  } catch {
    // not a Status object
  }
  switch (error.code) {
    case 404:
      return new NotFoundError(what);
    case 409:
      return body.reason === 'AlreadyExists'
        ? new AlreadyExistsError(what)
        : new ConflictError(what, body.message);
    case 410:
      return new GoneError(body.message ?? what);
    case 422: {
      const fields: FieldError[] = (body.details?.causes ?? []).map((c) => ({
        path: c.field ?? '',
        message: c.message ?? '',
      }));
      return new InvalidError(
        what,
        fields.length ? fields : [{ path: '', message: body.message ?? 'invalid' }],
      );
    }
    default:
      return new Error(`${what}: HTTP ${error.code}: ${body.message ?? error.message}`);
  }
}
