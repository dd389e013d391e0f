// What the profile and group sync controllers share: the finalizer, fanning one write out to
// every endpoint (one failing endpoint never stops the others), writing status only when it
// changed, and removal from every endpoint before the finalizer goes.
import { isNotFound as isMatchboxNotFound } from '../../matchbox/errors.ts';
import { type Holder, holderOf } from '../../matchbox/owner.ts';
import type { Condition } from '../../runtime/conditions.ts';
import { isConflict } from '../../runtime/errors.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { hasFinalizer, removeFinalizer } from '../../runtime/finalizers.ts';
import { describe, type Resource, type ResourceKind, refOf } from '../../runtime/resource.ts';
import { retryOnConflict } from '../../runtime/retry.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import type { Endpoint, EndpointPool, ObjectKindName } from './endpoints.ts';
import {
  type EndpointOutcome,
  endpointStatuses,
  errorReason,
  errorText,
  isCurrentOn,
  SYNCED,
  type SyncStatus,
  sameStatus,
  syncedCondition,
  withCondition,
  withSyncHealth,
} from './status.ts';

/** Held by every MatchboxProfile/MatchboxGroup until it is gone from every endpoint. */
export const FINALIZER = 'metalbox.io/matchbox-sync';

/** What the sync controllers are built from. */
export interface SyncDeps {
  store: ResourceStore;
  pool: EndpointPool;
  events: EventRecorder;
  /** This instance's owner identity, written into every Matchbox object (owner.ts). */
  owner: string;
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

/** The object is held on an endpoint by another metalbox instance: never overwritten or deleted here. */
export class OwnedElsewhereError extends Error {
  readonly reason = 'OwnedByAnotherInstance';
  readonly owner: string;
  constructor(endpoint: Endpoint, target: MatchboxTarget, owner: string) {
    super(
      `Matchbox ${target.kind} ${target.id} on ${endpoint.label} was written by the metalbox instance with owner identity "${owner}"; it is left alone (another store declares it: rename one of the two resources, or move it)`,
    );
    this.name = 'OwnedElsewhereError';
    this.owner = owner;
  }
}

/** Who holds the object on the endpoint (a ProfileGet/GroupGet; missing is 'absent'). */
export async function holderOn(endpoint: Endpoint, target: MatchboxTarget, owner: string): Promise<Holder> {
  try {
    const object =
      target.kind === 'profile'
        ? await endpoint.call('ProfileGet', (c) => c.profileGet(target.id))
        : await endpoint.call('GroupGet', (c) => c.groupGet(target.id));
    return holderOf(object, owner);
  } catch (error) {
    if (isMatchboxNotFound(error)) return 'absent';
    throw error;
  }
}

/**
 * Throws OwnedElsewhereError unless this instance may write the object on the endpoint. A write
 * this process made (noted on the endpoint) needs no look: nobody else overwrites a marked object.
 */
async function assertWritable(
  deps: SyncDeps,
  endpoint: Endpoint,
  target: MatchboxTarget,
): Promise<Holder | undefined> {
  const mark = endpoint.lastWrite(target.kind, target.id);
  if (mark && !mark.deleted) return undefined;
  const holder = await holderOn(endpoint, target, deps.owner);
  if (typeof holder === 'object') throw new OwnedElsewhereError(endpoint, target, holder.other);
  return holder;
}

/** The Event of an unmarked object taken over (the same message on every endpoint, so one series). */
export function adoptedEvent(
  deps: Pick<SyncDeps, 'events' | 'owner'>,
  obj: SyncedObject,
  target: MatchboxTarget,
): void {
  deps.events.event(
    obj,
    'Normal',
    'Adopted',
    `Matchbox ${target.kind} ${target.id} carried no owner identity (written before owners); adopted: written again with owner ${deps.owner}`,
  );
}

/** Runs `fn` on every endpoint at once and collects each outcome, failures included. */
async function onEveryEndpoint(
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

function failuresOf(outcomes: ReadonlyMap<string, EndpointOutcome>): Map<string, unknown> {
  const failures = new Map<string, unknown>();
  for (const [address, o] of outcomes) if (o.type === 'failed') failures.set(address, o.error);
  return failures;
}

export function endpointNames(pool: EndpointPool): Map<string, string> {
  return new Map(pool.endpoints.map((e) => [e.address, e.name]));
}

/** `status` after this reconcile's writes: endpoint entries and the Synced condition. */
function syncStatus(
  status: SyncStatus,
  generation: number,
  pool: EndpointPool,
  matchboxId: string,
  outcomes: ReadonlyMap<string, EndpointOutcome>,
  now: Date,
): SyncStatus {
  const endpoints = endpointStatuses(status.endpoints, pool.endpoints, generation, outcomes, now);
  const next: SyncStatus = { ...status, observedGeneration: generation, matchboxId, endpoints };
  return withCondition(
    next,
    syncedCondition(endpoints, generation, endpointNames(pool), failuresOf(outcomes)),
    now,
  );
}

/**
 * Applies `change` to the object's stored status and writes the result, unless it says what is
 * stored already. Two controllers write these statuses (sync and boot-answer verification), each
 * its own fields, so the write is conditional on the resourceVersion read, and on a conflict the
 * change is applied again to a fresh read. A Synced condition turning False is also an Event, so
 * `kubectl describe` shows when and why.
 */
export async function updateStatus(
  deps: Pick<SyncDeps, 'store' | 'events'>,
  kind: ResourceKind,
  obj: SyncedObject,
  change: (status: SyncStatus) => SyncStatus,
): Promise<void> {
  let current = obj;
  await retryOnConflict(
    async () => {
      const next = withSyncHealth(
        change(current.status ?? {}),
        current.metadata.generation ?? 1,
        current.metadata.deletionTimestamp !== undefined,
        new Date(),
      );
      if (sameStatus(current.status, next)) return;
      try {
        await deps.store.patchStatus(kind, refOf(current), statusPatch(next), {
          resourceVersion: current.metadata.resourceVersion,
        });
      } catch (error) {
        if (isConflict(error)) current = await deps.store.get<SyncedObject>(kind, refOf(obj));
        throw error;
      }
      const before = findSynced(current.status?.conditions);
      const after = findSynced(next.conditions);
      if (after?.status === 'False' && before?.status !== 'False') {
        const reason = after.reason === 'Pending' ? 'SyncPending' : 'SyncFailed';
        deps.events.event(current, 'Warning', reason, after.message);
      }
    },
    { attempts: 8 },
  );
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

/** Where on the Matchbox servers an object lives: its kind there and its id. */
export interface MatchboxTarget {
  kind: ObjectKindName;
  id: string;
}

/**
 * Writes the object to every endpoint whose status entry does not already hold this generation
 * (or where `stale` says the bytes changed without one), records the outcome in status, and
 * throws when an endpoint failed so that the reconcile is retried with backoff. Writes hold the
 * endpoint's lock for the object and are noted, so a drift scan never mistakes them for drift.
 */
export async function writeToEveryEndpoint<T extends SyncedObject>(
  deps: SyncDeps,
  kind: ResourceKind,
  obj: T,
  target: MatchboxTarget,
  write: (endpoint: Endpoint) => Promise<void>,
  options: {
    stale?: (endpoint: Endpoint) => boolean;
    /** Further status this controller owns, applied in the same write. */
    status?: (status: SyncStatus) => SyncStatus;
  } = {},
): Promise<void> {
  const generation = obj.metadata.generation ?? 1;
  const uid = obj.metadata.uid ?? '';
  const outcomes = await onEveryEndpoint(deps.pool.endpoints, async (e) => {
    const entry = obj.status?.endpoints?.find((s) => s.endpoint === e.address);
    if (isCurrentOn(entry, generation) && !options.stale?.(e)) return 'current';
    await e.withLock(target.kind, target.id, async () => {
      const holder = await assertWritable(deps, e, target);
      await write(e);
      if (holder === 'unmarked') adoptedEvent(deps, obj, target);
      e.noteWrite(target.kind, target.id, { uid, generation, deleted: false });
    });
    return 'written';
  });
  const now = new Date();
  await updateStatus(deps, kind, obj, (status) => {
    const next = syncStatus(status, generation, deps.pool, target.id, outcomes, now);
    return options.status ? options.status(next) : next;
  });
  const failures = failuresOf(outcomes);
  if (failures.size > 0)
    throw new EndpointsFailedError(describe(kind, refOf(obj)), 'writing it', failures, deps.pool.endpoints);
}

/** Synced=False for a reason no endpoint write can fix (an invalid spec, a missing Secret). */
export async function reportBlocked(
  deps: Pick<SyncDeps, 'store' | 'events'>,
  kind: ResourceKind,
  obj: SyncedObject,
  reason: string,
  message: string,
): Promise<void> {
  const generation = obj.metadata.generation ?? 1;
  const now = new Date();
  await updateStatus(deps, kind, obj, (status) =>
    withCondition(
      { ...status, observedGeneration: generation },
      { type: SYNCED, status: 'False', reason, message: errorText(message), observedGeneration: generation },
      now,
    ),
  );
}

/** `finalize` for an object that `remove` deletes from one endpoint, under its lock and noted. */
export async function removeFromEveryEndpoint(
  deps: SyncDeps,
  kind: ResourceKind,
  obj: SyncedObject,
  target: MatchboxTarget,
  remove: (endpoint: Endpoint) => Promise<void>,
): Promise<void> {
  const mark = { uid: obj.metadata.uid ?? '', generation: obj.metadata.generation ?? 1, deleted: true };
  await finalize(deps, kind, obj, target.id, (e) =>
    e.withLock(target.kind, target.id, async () => {
      // Another instance's object of the same id is not this resource's to remove.
      if (typeof (await holderOn(e, target, deps.owner)) !== 'object') await remove(e);
      e.noteWrite(target.kind, target.id, mark);
    }),
  );
}

/**
 * Deletion: removes the object from every endpoint (missing there is success), then the
 * finalizer. Until every endpoint confirmed, the finalizer stays and status says which did not.
 */
async function finalize(
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
  const error = new EndpointsFailedError(
    describe(kind, refOf(obj)),
    'removing it',
    failures,
    deps.pool.endpoints,
  );
  await updateStatus(deps, kind, obj, (status) => {
    const endpoints = endpointStatuses(status.endpoints, deps.pool.endpoints, generation, outcomes, now).map(
      (e) =>
        // Entries of endpoints it is gone from say so: synced (holding it) no more, no error.
        failures.has(e.endpoint) ? e : { endpoint: e.endpoint, synced: false },
    );
    return withCondition(
      { ...status, matchboxId, endpoints },
      {
        type: SYNCED,
        status: 'False',
        reason: 'Deleting',
        message: `being deleted; ${error.message}`,
        observedGeneration: generation,
      },
      now,
    );
  });
  throw error;
}
