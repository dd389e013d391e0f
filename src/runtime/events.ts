/**
 * Kubernetes Events about objects. Recording is fire-and-forget (a failed Event never fails a
 * reconcile). Callers must not put secrets in messages.
 */
import { randomBytes } from 'node:crypto';
import { isConflict, isNotFound } from './errors.ts';
import { errorFields, type Logger, silentLogger } from './logger.ts';
import { microTimestamp, objectKey, type Resource, type ResourceKind, refOf, timestamp } from './resource.ts';
import type { ResourceStore } from './store.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  event(obj: Resource, type: EventType, reason: string, message: string): void;
  /** The object is gone: drop what is kept to aggregate its Events (after its pending writes). */
  forget?(obj: Pick<Resource, 'kind' | 'metadata'>): void;
}

/** core/v1 Event. */
export const EventKind: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Event',
  plural: 'events',
  namespaced: true,
};

export interface CoreEvent extends Resource {
  involvedObject: {
    apiVersion: string;
    kind: string;
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
  };
  reason: string;
  message: string;
  type: EventType;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  /** When the series began, to the microsecond (absent on Events written by older recorders). */
  eventTime?: string;
  /** Required by the apiserver once eventTime is set; the reason doubles as the action. */
  action?: string;
  source: { component: string; host?: string };
  reportingComponent: string;
  reportingInstance: string;
}

export interface StoreEventRecorderOptions {
  store: ResourceStore;
  /** source.component / reportingComponent, e.g. "metalbox-controller". */
  component: string;
  /** reportingInstance / source.host, e.g. the pod or host name. */
  instance?: string;
  logger?: Logger;
  now?: () => Date;
  /** Distinct (object, type, reason, message) series remembered for aggregation (default 4096). */
  cacheSize?: number;
}

const MAX_MESSAGE = 1024;

/** Writes Events through a ResourceStore; a repeat of the same event bumps count and lastTimestamp. */
export class StoreEventRecorder implements EventRecorder {
  #options: StoreEventRecorderOptions;
  #logger: Logger;
  #now: () => Date;
  /** Aggregation key → the Event last written for it (insertion order doubles as LRU order). */
  #series = new Map<string, CoreEvent>();
  /**
   * Involved object → tail of its write chain: one object's Events are written in the order they
   * were recorded, so their resourceVersions order them even within one second.
   */
  #chains = new Map<string, Promise<void>>();
  #pending = new Set<Promise<void>>();

  constructor(options: StoreEventRecorderOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? (() => new Date());
  }

  event(obj: Resource, type: EventType, reason: string, message: string): void {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    const object = [obj.kind, objectKey(refOf(obj)), obj.metadata.uid ?? ''].join('\u0000');
    const key = [object, type, reason, text].join('\u0000');
    const at = this.#now();
    const previous = this.#chains.get(object) ?? Promise.resolve();
    const write = previous
      .then(() => this.#write(key, obj, type, reason, text, at))
      .catch((error: unknown) => {
        this.#logger.warn(
          { reason, object: objectKey(refOf(obj)), ...errorFields(error) },
          'could not record event',
        );
      });
    this.#chains.set(object, write);
    this.#pending.add(write);
    void write.finally(() => {
      this.#pending.delete(write);
      if (this.#chains.get(object) === write) this.#chains.delete(object);
    });
  }

  forget(obj: Pick<Resource, 'kind' | 'metadata'>): void {
    const prefix = `${[obj.kind, objectKey({ namespace: obj.metadata.namespace ?? '', name: obj.metadata.name ?? '' })].join('\u0000')}\u0000`;
    const drop = () => {
      for (const key of this.#series.keys()) if (key.startsWith(prefix)) this.#series.delete(key);
    };
    const pending = [...this.#chains].filter(([object]) => `${object}\u0000`.startsWith(prefix));
    if (pending.length === 0) drop();
    else void Promise.allSettled(pending.map(([, p]) => p)).then(drop);
  }

  /** Resolves when every event recorded so far is written (or has failed). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async #write(
    key: string,
    obj: Resource,
    type: EventType,
    reason: string,
    message: string,
    at: Date,
  ): Promise<void> {
    const { store } = this.#options;
    const last = this.#series.get(key);
    if (last) {
      const repeat = { ...last, count: last.count + 1, lastTimestamp: timestamp(at) };
      try {
        this.#remember(key, await store.update(EventKind, repeat));
        return;
      } catch (error) {
        // Someone else changed or removed it (events expire): start a new series.
        if (!isConflict(error) && !isNotFound(error)) throw error;
      }
    }
    this.#remember(key, await store.create(EventKind, this.#newEvent(obj, type, reason, message, at)));
  }

  #newEvent(obj: Resource, type: EventType, reason: string, message: string, at: Date): CoreEvent {
    const { component, instance } = this.#options;
    const meta = obj.metadata;
    const time = timestamp(at);
    return {
      apiVersion: 'v1',
      kind: 'Event',
      // client-go names events <object>.<unique hex>; events of cluster-scoped objects go to "default".
      metadata: {
        name: `${meta.name}.${at.getTime().toString(16)}${randomBytes(4).toString('hex')}`,
        namespace: meta.namespace || 'default',
      },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: meta.name,
        ...(meta.namespace ? { namespace: meta.namespace } : {}),
        ...(meta.uid ? { uid: meta.uid } : {}),
        ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
      },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: time,
      lastTimestamp: time,
      eventTime: microTimestamp(at),
      action: reason,
      source: { component, ...(instance ? { host: instance } : {}) },
      reportingComponent: component,
      reportingInstance: instance ?? component,
    };
  }

  #remember(key: string, event: CoreEvent): void {
    this.#series.delete(key);
    this.#series.set(key, event);
    const limit = this.#options.cacheSize ?? 4096;
    while (this.#series.size > limit) this.#series.delete(this.#series.keys().next().value as string);
  }
}
