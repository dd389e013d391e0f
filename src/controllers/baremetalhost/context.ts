// What a state handler works with: the host as stored, a draft of its status that the dispatcher
// writes once at the end, the shared controller environment, and typed results to return.

import type { BmcDriver } from '../../bmc/driver.ts';
import type {
  BareMetalHost,
  BareMetalHostStatus,
  HostErrorType,
  ProvisioningState,
} from '../../crds/baremetalhost.ts';
import type { MatchboxGroup } from '../../crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../../crds/matchboxprofile.ts';
import {
  type ConditionInput,
  findCondition,
  removeCondition,
  setCondition,
} from '../../runtime/conditions.ts';
import { ConflictError } from '../../runtime/errors.ts';
import type { EventRecorder, EventType } from '../../runtime/events.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { Resource } from '../../runtime/resource.ts';
import { retryOnConflict } from '../../runtime/retry.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import { type HostBmcs, hostKey } from './bmc.ts';
import type { HostControllerConfig } from './config.ts';
import type { ProvisioningHooks } from './hooks.ts';
import type { HostIndex } from './host-index.ts';
import { HOST_KIND } from './kinds.ts';
import type { HostMetrics } from './metrics.ts';
import type { PowerMemory } from './power-memory.ts';
import type { ProvisioningSlots } from './slots.ts';

/** Shared by every reconcile of one controller. */
export interface HostEnv {
  store: ResourceStore;
  hosts: Informer<BareMetalHost & Resource>;
  profiles: Informer<MatchboxProfile & Resource>;
  groups: Informer<MatchboxGroup & Resource>;
  bmcs: HostBmcs;
  /** Read on every use, so hooks supplied after the controller was built still apply. */
  hooks: () => ProvisioningHooks;
  config: HostControllerConfig;
  events: EventRecorder;
  metrics: HostMetrics;
  slots: ProvisioningSlots;
  index: HostIndex;
  power: PowerMemory;
  /** Error backoff: when each host in error may retry, and for which inputs (key → entry). */
  retries: Map<string, { at: number; inputs: string }>;
  now: () => Date;
  logger: Logger;
}

/** A step failed; `type` says which operation, `message` what a person needs to act on. */
export class HostError extends Error {
  readonly type: HostErrorType;
  constructor(type: HostErrorType, message: string) {
    super(message);
    this.name = 'HostError';
    this.type = type;
  }
}

/** What a host waits for, shown as its Ready/Reconciling reason and message. */
export interface HostWait {
  reason: string;
  message: string;
}

export type HandlerResult =
  /** Nothing to change now; look again after requeueAfter ms (or when something changes). */
  | { kind: 'stay'; requeueAfter?: number; wait?: HostWait }
  /** Move to `state`; `reason` goes into the Event and the log. */
  | { kind: 'next'; state: ProvisioningState; reason: string }
  /** The step failed: error fields, Event, backoff; `stall` when only a person can fix it. */
  | { kind: 'error'; type: HostErrorType; message: string; stall?: string }
  /** The host is gone (its finalizer was released): write nothing. */
  | { kind: 'gone' };

export const stay = (requeueAfter?: number, wait?: HostWait): HandlerResult => ({
  kind: 'stay',
  ...(requeueAfter === undefined ? {} : { requeueAfter }),
  ...(wait ? { wait } : {}),
});
export const next = (state: ProvisioningState, reason: string): HandlerResult => ({
  kind: 'next',
  state,
  reason,
});
export const failed = (type: HostErrorType, message: string, stall?: string): HandlerResult => ({
  kind: 'error',
  type,
  message,
  ...(stall ? { stall } : {}),
});

export type Handler = (ctx: HostContext) => Promise<HandlerResult>;

export class HostContext {
  readonly env: HostEnv;
  readonly logger: Logger;
  /** The host as last read from or written to the store. */
  host: BareMetalHost & Resource;
  /** The status the dispatcher writes at the end (handlers edit it). */
  status: BareMetalHostStatus;
  /** Bookkeeping (Events, metrics) that is true only once the status write succeeds. */
  readonly afterWrite: (() => void)[] = [];

  constructor(env: HostEnv, host: BareMetalHost & Resource, logger: Logger) {
    this.env = env;
    this.host = host;
    this.status = structuredClone(host.status ?? {});
    this.logger = logger;
  }

  get key(): string {
    return hostKey(this.host);
  }

  get namespace(): string {
    return this.host.metadata.namespace ?? '';
  }

  get generation(): number {
    return this.host.metadata.generation ?? 0;
  }

  get state(): ProvisioningState | undefined {
    return this.status.provisioning?.state;
  }

  /** status.provisioning, created when absent. */
  provisioning(): NonNullable<BareMetalHostStatus['provisioning']> {
    if (!this.status.provisioning) this.status.provisioning = { state: this.state ?? 'registering' };
    return this.status.provisioning;
  }

  bmc(): BmcDriver {
    return this.env.bmcs.driver(this.host);
  }

  now(): Date {
    return this.env.now();
  }

  event(type: EventType, reason: string, message: string): void {
    this.env.events.event(this.host, type, reason, message);
  }

  condition(type: string) {
    return findCondition(this.status.conditions, type);
  }

  setCondition(input: Omit<ConditionInput, 'observedGeneration'>): void {
    this.status.conditions = setCondition(
      this.status.conditions,
      { ...input, observedGeneration: this.generation },
      this.now(),
    );
  }

  removeCondition(type: string): void {
    if (!this.condition(type)) return;
    this.status.conditions = removeCondition(this.status.conditions, type);
    if (this.status.conditions.length === 0) delete this.status.conditions;
  }

  annotation(name: string): string | undefined {
    return this.host.metadata.annotations?.[name];
  }

  /** True when the draft differs from what is stored. */
  get statusChanged(): boolean {
    return JSON.stringify(this.status) !== JSON.stringify(this.host.status ?? {});
  }

  /**
   * Writes the draft now, before a side effect that must not be repeated after a crash (an
   * attempt number, a boot request). Conflicts propagate: the reconcile starts over.
   */
  async persist(): Promise<void> {
    if (this.statusChanged) {
      const written = await this.env.store.updateStatus<BareMetalHost & Resource>(HOST_KIND, {
        ...this.host,
        status: this.status,
      });
      this.host = written;
      this.status = structuredClone(written.status ?? {});
    }
    for (const effect of this.afterWrite.splice(0)) effect();
  }

  /** Changes the object (annotations, finalizers, a defaulted field) on a fresh read; the status draft is kept. */
  async updateObject(mutate: (host: BareMetalHost & Resource) => boolean): Promise<void> {
    const ref = { namespace: this.namespace, name: this.host.metadata.name };
    const written = await retryOnConflict(async () => {
      const fresh = await this.env.store.get<BareMetalHost & Resource>(HOST_KIND, ref);
      if (!mutate(fresh)) return fresh;
      return this.env.store.update(HOST_KIND, fresh);
    });
    // Our draft was made from the status we read; if someone else changed status meanwhile, writing
    // the draft on top of the new resourceVersion would silently drop their change: start over.
    if (JSON.stringify(written.status ?? {}) !== JSON.stringify(this.host.status ?? {})) {
      throw new ConflictError(`BareMetalHost ${this.key}`, 'status changed while reconciling; starting over');
    }
    this.host = written;
  }

  /** Removes an annotation (one-shot requests are removed once done). */
  async removeAnnotation(name: string): Promise<void> {
    await this.updateObject((h) => {
      if (h.metadata.annotations?.[name] === undefined) return false;
      delete h.metadata.annotations[name];
      return true;
    });
  }
}
