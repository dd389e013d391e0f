/**
 * A controller: "for Kind, owns Kinds, watches Kind mapped to keys" wired to one work queue and a
 * level-triggered reconcile(key). Everything else (queueing, backoff, metrics) lives here, so a
 * controller file holds only domain logic.
 */
import type { BackoffOptions } from './backoff.ts';
import { isConflict } from './errors.ts';
import type { Informer } from './informer.ts';
import { errorFields, type Logger, withFields } from './logger.ts';
import type { RuntimeMetrics } from './metrics.ts';
import { DEFAULT_BACKOFF, WorkQueue } from './queue.ts';
import {
  type ObjectRef,
  objectKey,
  parseObjectKey,
  type Resource,
  type ResourceKind,
  refOf,
} from './resource.ts';

export interface ReconcileRequest extends ObjectRef {
  /** `namespace/name` (or `name` for cluster-scoped kinds). */
  key: string;
}

export interface ReconcileResult {
  /** Reconcile this key again after this many ms, even if nothing changes. */
  requeueAfter?: number;
}

export interface ReconcileContext {
  /** Aborted when the controller must stop at once (leadership lost, shutdown deadline passed). */
  signal: AbortSignal;
  logger: Logger;
}

/** Maps a changed object of another kind to the keys of `for` objects that depend on it. */
export interface WatchSpec {
  kind: ResourceKind;
  map: (obj: Resource) => ObjectRef[];
}

export interface ControllerSpec {
  /** Unique; used in metrics and logs. */
  name: string;
  /** The kind reconciled: reconcile() gets keys of these objects. */
  for: ResourceKind;
  /** Kinds this controller creates with ownerReferences to a `for` object; changes enqueue the owner. */
  owns?: ResourceKind[];
  watches?: WatchSpec[];
  /** Re-reads the world for `req` and moves it one step; throw to retry with backoff. */
  // biome-ignore lint/suspicious/noConfusingVoidType: lets a reconcile that returns nothing type-check.
  reconcile(req: ReconcileRequest, ctx: ReconcileContext): Promise<ReconcileResult | undefined | void>;
  /** Keys reconciled in parallel (default 1; one key never runs twice at once). */
  workers?: number;
  /** Backoff after an error (default 1 s doubling to 5 min). */
  backoff?: BackoffOptions;
  /** Backoff after a ConflictError: short, since the next read is likely current (default 10 ms to 1 s). */
  conflictBackoff?: BackoffOptions;
}

export interface ControllerDeps {
  informer: (kind: ResourceKind) => Informer;
  metrics: RuntimeMetrics;
  logger: Logger;
}

const CONFLICT_BACKOFF: BackoffOptions = { baseMs: 10, capMs: 1000, jitter: 0.5 };

export class Controller {
  readonly spec: ControllerSpec;
  #deps: ControllerDeps;
  #logger: Logger;
  #queue: WorkQueue;
  #abort = new AbortController();
  #detach: (() => void)[] = [];
  #stopped = false;

  constructor(spec: ControllerSpec, deps: ControllerDeps) {
    this.spec = spec;
    this.#deps = deps;
    this.#logger = withFields(deps.logger, { controller: spec.name });
    const backoff = spec.backoff ?? DEFAULT_BACKOFF;
    const conflict = spec.conflictBackoff ?? CONFLICT_BACKOFF;
    this.#queue = new WorkQueue((key) => this.#reconcile(key), {
      workers: spec.workers,
      backoffFor: (error) => (isConflict(error) ? conflict : backoff),
      onError: (key, error, failures, delayMs) => {
        const level = isConflict(error) ? 'debug' : 'warn';
        this.#logger[level](
          { key, failures, retryInMs: Math.round(delayMs), ...errorFields(error) },
          'reconcile failed',
        );
      },
    });
    deps.metrics.trackQueue(spec.name, () => this.#queue.depth);
  }

  get name(): string {
    return this.spec.name;
  }

  /** Every kind whose informer this controller reads. */
  kinds(): ResourceKind[] {
    return [this.spec.for, ...(this.spec.owns ?? []), ...(this.spec.watches ?? []).map((w) => w.kind)];
  }

  get queue(): WorkQueue {
    return this.#queue;
  }

  /** Waits for its informers to sync, then starts reconciling every existing and changed object. */
  async start(signal?: AbortSignal): Promise<void> {
    const informers = this.kinds().map((k) => this.#deps.informer(k));
    await Promise.all(informers.map((i) => i.waitForSync(signal)));
    if (this.#stopped) return;
    const primary = this.#deps.informer(this.spec.for);
    const enqueue = (obj: Resource) => this.#queue.add(objectKey(refOf(obj)));
    this.#listen(primary, enqueue);
    for (const kind of this.spec.owns ?? []) {
      this.#listen(this.#deps.informer(kind), (obj) => this.#addAll(ownersOf(obj, this.spec.for)));
    }
    for (const w of this.spec.watches ?? []) {
      this.#listen(this.#deps.informer(w.kind), (obj) => this.#addAll(w.map(obj)));
    }
    for (const key of primary.keys()) this.#queue.add(key);
    this.#logger.info({ objects: primary.keys().length }, 'controller started');
  }

  /** Stops taking work and waits for in-flight reconciles. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of this.#detach.splice(0)) off();
    await this.#queue.shutdown();
  }

  /** Tells in-flight reconciles to give up (their ctx.signal aborts). */
  abort(reason: string): void {
    this.#abort.abort(new Error(reason));
  }

  #listen(informer: Informer, handler: (obj: Resource) => void): void {
    const onUpdate = (obj: Resource, old: Resource) => {
      handler(old);
      handler(obj);
    };
    informer.on('add', handler);
    informer.on('update', onUpdate);
    informer.on('delete', handler);
    informer.on('resync', handler);
    this.#detach.push(() => {
      informer.off('add', handler);
      informer.off('update', onUpdate);
      informer.off('delete', handler);
      informer.off('resync', handler);
    });
  }

  #addAll(refs: ObjectRef[]): void {
    for (const ref of refs) this.#queue.add(objectKey(this.spec.for.namespaced ? ref : { name: ref.name }));
  }

  async #reconcile(key: string): Promise<ReconcileResult | undefined> {
    const { metrics } = this.#deps;
    const controller = this.spec.name;
    const end = metrics.reconcileDuration.startTimer({ controller });
    try {
      const result = await this.spec.reconcile(
        { key, ...parseObjectKey(key) },
        { signal: this.#abort.signal, logger: withFields(this.#logger, { key }) },
      );
      const requeue = result?.requeueAfter !== undefined;
      metrics.reconcileTotal.inc({ controller, result: requeue ? 'requeue_after' : 'success' });
      return result ?? undefined;
    } catch (error) {
      metrics.reconcileErrors.inc({ controller });
      metrics.reconcileTotal.inc({ controller, result: isConflict(error) ? 'conflict' : 'error' });
      throw error;
    } finally {
      end();
    }
  }
}

/** Owners of `obj` that are `owner`-kind objects (ownerReferences live in the owned object's namespace). */
export function ownersOf(obj: Resource, owner: ResourceKind): ObjectRef[] {
  const refs: ObjectRef[] = [];
  for (const o of obj.metadata.ownerReferences ?? []) {
    const slash = o.apiVersion.indexOf('/');
    const group = slash < 0 ? '' : o.apiVersion.slice(0, slash);
    if (o.kind !== owner.kind || group !== owner.group) continue;
    const namespace = owner.namespaced ? obj.metadata.namespace : undefined;
    refs.push(namespace ? { namespace, name: o.name } : { name: o.name });
  }
  return refs;
}
