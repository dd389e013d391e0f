// What the profile and group sync controllers share: the finalizer, fanning one write out to
// every endpoint (one failing endpoint never stops the others), writing status only when it
// changed, and removal from every endpoint before the finalizer goes.
import type { Condition } from '../../runtime/conditions.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { hasFinalizer, removeFinalizer } from '../../runtime/finalizers.ts';
import { describe, type Resource, type ResourceKind, refOf } from '../../runtime/resource.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import type { Endpoint, EndpointPool } from './endpoints.ts';
import {
  type EndpointOutcome,
  endpointStatuses,
  errorReason,
  errorText,
  SYNCED,
  type SyncStatus,
  sameStatus,
  syncedCondition,
  withCondition,
} from './status.ts';

/** Held by every MatchboxProfile/MatchboxGroup until it is gone from every endpoint. */
export const FINALIZER = 'metalbox.io/matchbox-sync';

/** What the sync controllers are built from. */
export interface SyncDeps {
  store: ResourceStore;
  pool: EndpointPool;
  events: EventRecorder;
  /** Starts the periodic drift scans; called by every reconcile (only the leader reconciles). */
  arm(signal: AbortSignal): void;
}

export type SyncedObject = Resource<unknown, SyncStatus>;

/** Some endpoints do not hold the object; the reconcile is retried with backoff. */
export class EndpointsFailedError extends Error {
  readonly failures: ReadonlyMap<string, unknown>;
  constructor(
    what: string,
    doing: string,
    failures: ReadonlyMap<string, unknown>,
    endpoints: readonly Endpoint[],
  ) {
    const parts = [...failures].map(([address, error]) => {
      const e = endpoints.find((x) => x.address === address);
      return `${e ? e.label : address}: ${errorText(error)}`;
    });
    super(
      `${what}: ${doing} failed on ${failures.size} of ${endpoints.length} Matchbox endpoints: ${parts.join('; ')}`,
    );
    this.name = 'EndpointsFailedError';
    this.failures = failures;
  }

  /** The reason shared by every failure (Unreachable, UnknownCA, ...), else SyncFailed. */
  get reason(): string {
    const reasons = new Set([...this.failures.values()].map(errorReason));
    return reasons.size === 1 ? [...reasons][0]! : 'SyncFailed';
  }
}

/** Runs `fn` on every endpoint at once and collects each outcome, failures included. */
export async function onEveryEndpoint(
  endpoints: readonly Endpoint[],
  fn: (endpoint: Endpoint) => Promise<'current' | 'written'>,
): Promise<Map<string, EndpointOutcome>> {
  const settled = await Promise.allSettled(endpoints.map((e) => fn(e)));
  const outcomes = new Map<string, EndpointOutcome>();
  settled.forEach((result, i) => {
    const address = endpoints[i]!.address;
    outcomes.set(
      address,
      result.status === 'fulfilled' ? { type: result.value } : { type: 'failed', error: result.reason },
    );
  });
  return outcomes;
}

export function failuresOf(outcomes: ReadonlyMap<string, EndpointOutcome>): Map<string, unknown> {
  const failures = new Map<string, unknown>();
  for (const [address, o] of outcomes) if (o.type === 'failed') failures.set(address, o.error);
  return failures;
}

export function endpointNames(pool: EndpointPool): Map<string, string> {
  return new Map(pool.endpoints.map((e) => [e.address, e.name]));
}

/** The status after this reconcile's writes: endpoint entries and the Synced condition. */
export function syncStatus(
  obj: SyncedObject,
  pool: EndpointPool,
  matchboxId: string,
  outcomes: ReadonlyMap<string, EndpointOutcome>,
  now: Date,
): SyncStatus {
  const generation = obj.metadata.generation ?? 1;
  const previous = obj.status ?? {};
  const endpoints = endpointStatuses(previous.endpoints, pool.endpoints, generation, outcomes, now);
  const next: SyncStatus = { ...previous, observedGeneration: generation, matchboxId, endpoints };
  return withCondition(
    next,
    syncedCondition(endpoints, generation, endpointNames(pool), failuresOf(outcomes)),
    now,
  );
}

/**
 * Writes `next` as the object's status unless it says what the stored one says. A Synced
 * condition turning False is also an Event, so `kubectl describe` shows when and why.
 */
export async function writeStatus(
  store: ResourceStore,
  events: EventRecorder,
  kind: ResourceKind,
  obj: SyncedObject,
  next: SyncStatus,
): Promise<void> {
  if (sameStatus(obj.status, next)) return;
  await store.patchStatus(kind, refOf(obj), statusPatch(next));
  const before = findSynced(obj.status?.conditions);
  const after = findSynced(next.conditions);
  if (after?.status === 'False' && before?.status !== 'False') {
    events.event(obj, 'Warning', after.reason === 'Pending' ? 'SyncPending' : 'SyncFailed', after.message);
  }
}

const findSynced = (conditions: readonly Condition[] | undefined) =>
  conditions?.find((c) => c.type === SYNCED);

/** A merge patch replacing the whole status (absent fields removed). */
function statusPatch(next: SyncStatus): Record<string, unknown> {
  return {
    observedGeneration: next.observedGeneration ?? null,
    matchboxId: next.matchboxId ?? null,
    endpoints: next.endpoints ?? null,
    conditions: next.conditions ?? null,
  };
}

/**
 * Deletion: removes the object from every endpoint (missing there is success), then the
 * finalizer. Until every endpoint confirmed, the finalizer stays and status says which did not.
 */
export async function finalize(
  deps: SyncDeps,
  kind: ResourceKind,
  obj: SyncedObject,
  matchboxId: string,
  remove: (endpoint: Endpoint) => Promise<void>,
): Promise<void> {
  if (!hasFinalizer(obj, FINALIZER)) return;
  const outcomes = await onEveryEndpoint(deps.pool.endpoints, async (e) => {
    await remove(e);
    return 'written';
  });
  const failures = failuresOf(outcomes);
  if (failures.size === 0) {
    await removeFinalizer(deps.store, kind, refOf(obj), FINALIZER);
    return;
  }
  const now = new Date();
  const generation = obj.metadata.generation ?? 1;
  const previous = obj.status ?? {};
  const endpoints = endpointStatuses(previous.endpoints, deps.pool.endpoints, generation, outcomes, now).map(
    (e) =>
      // Entries of endpoints it is gone from say so: synced (holding it) no more, no error.
      failures.has(e.endpoint) ? e : { endpoint: e.endpoint, synced: false },
  );
  const error = new EndpointsFailedError(
    describe(kind, refOf(obj)),
    'removing it',
    failures,
    deps.pool.endpoints,
  );
  const next = withCondition(
    { ...previous, matchboxId, endpoints },
    {
      type: SYNCED,
      status: 'False',
      reason: 'Deleting',
      message: `being deleted; ${error.message}`,
      observedGeneration: generation,
    },
    now,
  );
  await writeStatus(deps.store, deps.events, kind, obj, next);
  throw error;
}
