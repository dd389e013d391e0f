// The status both sync controllers (and the drift scan, after a repair) write: one entry per
// endpoint and the Synced condition, which is True only when every configured endpoint holds the
// object's current generation. Pure functions of the old status and what just happened.
import { canonicalJson } from '../../matchbox/objects.ts';
import { type Condition, type ConditionInput, setCondition } from '../../runtime/conditions.ts';
import { type Health, withHealth } from '../../runtime/health.ts';
import { timestamp } from '../../runtime/resource.ts';

export const SYNCED = 'Synced';
export const PROFILE_RESOLVED = 'ProfileResolved';
export const BOOT_ANSWER_VERIFIED = 'BootAnswerVerified';
/** False while a group this instance does not own has the same selector (Matchbox serves either). */
export const SELECTOR_UNIQUE = 'SelectorUnique';

/** The status schema caps lastError at 4096 characters. */
const MAX_ERROR = 4096;

export interface EndpointStatus {
  endpoint: string;
  observedGeneration?: number;
  synced: boolean;
  lastError?: string;
  lastSyncTime?: string;
}

export interface SyncStatus {
  observedGeneration?: number;
  matchboxId?: string;
  endpoints?: EndpointStatus[];
  conditions?: Condition[];
}

/** What happened on one endpoint in this reconcile. */
export type EndpointOutcome =
  /** The endpoint already held this generation; nothing was written. */
  { type: 'current' } | { type: 'written' } | { type: 'failed'; error: unknown };

export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > MAX_ERROR ? `${text.slice(0, MAX_ERROR - 3)}...` : text;
}

/** The machine-readable cause of a failure (MatchboxError reasons: Unreachable, UnknownCA, ...). */
export function errorReason(error: unknown): string {
  const reason = (error as { reason?: unknown } | null)?.reason;
  return typeof reason === 'string' && /^[A-Z][A-Za-z]*$/.test(reason) ? reason : 'SyncFailed';
}

export function isCurrentOn(entry: EndpointStatus | undefined, generation: number): boolean {
  return entry?.synced === true && entry.observedGeneration === generation;
}

export function nextEndpointStatus(
  previous: EndpointStatus | undefined,
  endpoint: string,
  generation: number,
  outcome: EndpointOutcome,
  now: Date,
): EndpointStatus {
  switch (outcome.type) {
    case 'current':
      return previous ?? { endpoint, observedGeneration: generation, synced: true };
    case 'written':
      return { endpoint, observedGeneration: generation, synced: true, lastSyncTime: timestamp(now) };
    case 'failed':
      return {
        endpoint,
        ...(previous?.observedGeneration === undefined
          ? {}
          : { observedGeneration: previous.observedGeneration }),
        synced: false,
        lastError: errorText(outcome.error),
        ...(previous?.lastSyncTime ? { lastSyncTime: previous.lastSyncTime } : {}),
      };
  }
}

/** Endpoint entries in configuration order; entries of endpoints no longer configured are dropped. */
export function endpointStatuses(
  previous: readonly EndpointStatus[] | undefined,
  endpoints: readonly { address: string }[],
  generation: number,
  outcomes: ReadonlyMap<string, EndpointOutcome>,
  now: Date,
): EndpointStatus[] {
  return endpoints.map((e) => {
    const before = previous?.find((p) => p.endpoint === e.address);
    const outcome = outcomes.get(e.address);
    return outcome
      ? nextEndpointStatus(before, e.address, generation, outcome, now)
      : (before ?? { endpoint: e.address, synced: false });
  });
}

/** Synced: True when every endpoint holds `generation`; otherwise which do not, and why. */
export function syncedCondition(
  entries: readonly EndpointStatus[],
  generation: number,
  names: ReadonlyMap<string, string>,
  failures: ReadonlyMap<string, unknown> = new Map(),
): ConditionInput {
  const label = (address: string) => `${names.get(address) ?? address} (${address})`;
  const behind = entries.filter((e) => !isCurrentOn(e, generation));
  if (behind.length === 0) {
    return {
      type: SYNCED,
      status: 'True',
      reason: 'Synced',
      message: `generation ${generation} is on every Matchbox endpoint: ${entries.map((e) => label(e.endpoint)).join(', ')}`,
      observedGeneration: generation,
    };
  }
  const reasonOf = (e: EndpointStatus) => {
    if (failures.has(e.endpoint)) return errorReason(failures.get(e.endpoint));
    return e.lastError ? 'SyncFailed' : 'Pending';
  };
  const reasons = new Set(behind.map(reasonOf));
  const reason = reasons.size === 1 ? [...reasons][0]! : 'SyncFailed';
  const detail = behind.map((e) => `${label(e.endpoint)}: ${e.lastError ?? 'not written yet'}`).join('; ');
  return {
    type: SYNCED,
    status: 'False',
    reason,
    message: `generation ${generation} is not on ${behind.length} of ${entries.length} Matchbox endpoints: ${detail}`,
    observedGeneration: generation,
  };
}

export function withCondition(status: SyncStatus, input: ConditionInput, now: Date): SyncStatus {
  return { ...status, conditions: setCondition(status.conditions, input, now) };
}

export function withoutCondition(status: SyncStatus, type: string): SyncStatus {
  const conditions = (status.conditions ?? []).filter((c) => c.type !== type);
  return { ...status, conditions };
}

/** Whether two statuses say the same (so an unchanged status is not written again). */
export const sameStatus = (a: SyncStatus | undefined, b: SyncStatus | undefined): boolean =>
  canonicalJson(a ?? {}) === canonicalJson(b ?? {});

/** Synced reasons no retry fixes: the object, a Secret or the Matchbox client config must change. */
const STALLED_REASONS = new Set([
  'InvalidSpec',
  'Invalid',
  'Config',
  'UnknownCA',
  'ClientCertRejected',
  'ServerNameMismatch',
]);

/** The object's health from its Synced (and, for groups, ProfileResolved) condition. */
export function syncHealth(status: SyncStatus, generation: number, deleting: boolean): Health {
  const synced = status.conditions?.find((c) => c.type === SYNCED);
  if (deleting) {
    return {
      state: 'reconciling',
      reason: 'Deleting',
      message: synced?.message ?? 'being removed from Matchbox',
    };
  }
  if (!synced || synced.observedGeneration !== generation) {
    return {
      state: 'reconciling',
      reason: 'Pending',
      message: `generation ${generation} is not written to Matchbox yet`,
    };
  }
  if (synced.status !== 'True') {
    const state = STALLED_REASONS.has(synced.reason) ? 'stalled' : 'reconciling';
    return { state, reason: synced.reason, message: synced.message };
  }
  // Another instance's group with the same selector: Matchbox may serve either until a person acts.
  const shared = status.conditions?.find((c) => c.type === SELECTOR_UNIQUE);
  if (shared?.status === 'False') return { state: 'stalled', reason: shared.reason, message: shared.message };
  const profile = status.conditions?.find((c) => c.type === PROFILE_RESOLVED);
  if (profile?.status === 'False')
    return { state: 'reconciling', reason: profile.reason, message: profile.message };
  return { state: 'ready', reason: 'Synced', message: synced.message };
}

/** `status` with Ready/Reconciling/Stalled recomputed (a status with no conditions yet gets none). */
export function withSyncHealth(
  status: SyncStatus,
  generation: number,
  deleting: boolean,
  now: Date,
): SyncStatus {
  if (!status.conditions?.length) return status;
  const conditions = withHealth(status.conditions, syncHealth(status, generation, deleting), generation, now);
  return { ...status, conditions };
}
