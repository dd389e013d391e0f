// BootAnswerVerified: after a group is on an endpoint, ask that endpoint's HTTP API what the
// machine with the group's MAC would boot (GET /ipxe?mac=...) and compare it with the profile's
// kernel, initrd and args. Only endpoints holding the current group and profile are asked, so a
// profile still being written is "waiting", not a mismatch. Its own controller, with few workers:
// each check costs Matchbox a read of every group file, and must neither hold up the sync nor
// flood the boot servers.
import { type BootVerification, MatchboxHttpError, verifyBootAnswer } from '../../matchbox/http.ts';
import { type Group, isMacKey } from '../../matchbox/objects.ts';
import { RenderError, renderGroup, renderProfile } from '../../matchbox/render.ts';
import type { Condition, ConditionInput } from '../../runtime/conditions.ts';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { isNotFound } from '../../runtime/errors.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { describe, type ObjectRef, type Resource, type ResourceKind, refOf } from '../../runtime/resource.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import type { Endpoint, EndpointPool } from './endpoints.ts';
import { GroupKind, type GroupObject, ProfileKind, type ProfileObject } from './kinds.ts';
import type { MatchboxSyncMetrics } from './metrics.ts';
import type { ReferenceIndex } from './references.ts';
import {
  BOOT_ANSWER_VERIFIED,
  isCurrentOn,
  type SyncStatus,
  withCondition,
  withoutCondition,
} from './status.ts';
import { updateStatus } from './sync.ts';

export interface VerifyInput {
  group: GroupObject;
  rendered: Group;
  /** The group's status after this reconcile's writes. */
  status: SyncStatus;
  profile: ProfileObject | undefined;
  endpoints: readonly Endpoint[];
  /** Endpoints (addresses) the group was just written to: check them even if a verdict exists. */
  written?: ReadonlySet<string>;
  metrics: MatchboxSyncMetrics;
}

export interface VerifyResult {
  /** undefined: nothing to verify (no MAC selector, no boot config, no HTTP endpoint); drop the condition. */
  condition: ConditionInput | undefined;
  /** Some endpoint answered wrong or not at all: worth retrying. */
  failed: boolean;
}

/** `... (generation 3) on: a, b`: what a True condition was computed from, so it is not re-checked. */
const VERIFIED_FROM = /\(generation (\d+)\) on: (.*)$/;

export async function verifyGroupBootAnswer(input: VerifyInput): Promise<VerifyResult> {
  const { group, rendered, status, profile, endpoints, written, metrics } = input;
  const generation = group.metadata.generation ?? 1;
  const macKey = Object.keys(rendered.selector).find(isMacKey);
  const targets = endpoints.filter((e) => e.httpURL !== undefined);
  if (macKey === undefined || targets.length === 0) return { condition: undefined, failed: false };
  const mac = rendered.selector[macKey]!;
  const at = (type: ConditionInput['status'], reason: string, message: string): ConditionInput => ({
    type: BOOT_ANSWER_VERIFIED,
    status: type,
    reason,
    message,
    observedGeneration: generation,
  });
  if (!profile) {
    return {
      condition: at(
        'Unknown',
        'ProfileNotFound',
        `MatchboxProfile ${group.spec.profileRef.name} does not exist`,
      ),
      failed: false,
    };
  }
  const expected = renderProfile(profile).profile.boot;
  if (!expected) return { condition: undefined, failed: false };
  const profileGeneration = profile.metadata.generation ?? 1;
  const profileName = `${profile.metadata.namespace}/${profile.metadata.name}`;

  const ready = targets.filter(
    (e) =>
      isCurrentOn(
        status.endpoints?.find((s) => s.endpoint === e.address),
        generation,
      ) &&
      isCurrentOn(
        profile.status?.endpoints?.find((s) => s.endpoint === e.address),
        profileGeneration,
      ),
  );
  const names = targets.map((e) => e.name).join(', ');
  const previous = group.status?.conditions?.find((c) => c.type === BOOT_ANSWER_VERIFIED);
  if (
    ready.length === targets.length &&
    stillVerified(previous, generation, profileGeneration, names, written, targets)
  ) {
    return { condition: previous, failed: false };
  }

  const checks = await Promise.all(
    ready.map(async (e) => {
      try {
        const result = await verifyBootAnswer(e.httpURL!, mac, expected, { timeoutMs: e.timeoutMs });
        metrics.bootAnswerChecks.inc({ endpoint: e.name, result: result.ok ? 'ok' : 'mismatch' });
        return { endpoint: e, result };
      } catch (error) {
        metrics.bootAnswerChecks.inc({ endpoint: e.name, result: 'error' });
        if (!(error instanceof MatchboxHttpError)) throw error;
        return { endpoint: e, error };
      }
    }),
  );
  const bad = checks.filter((c) => c.error !== undefined || !c.result?.ok);
  if (bad.length > 0) {
    const unreachable = bad.every((c) => c.error !== undefined);
    const detail = bad
      .map(
        (c) =>
          `${c.endpoint.name} (${c.endpoint.httpURL}): ${c.error ? c.error.message : describeDiff(c.result!)}`,
      )
      .join('; ');
    return {
      condition: at(
        'False',
        unreachable ? 'HTTPUnreachable' : 'BootAnswerMismatch',
        `GET /ipxe?mac=${mac} does not boot MatchboxProfile ${profileName} (generation ${profileGeneration}): ${detail}`,
      ),
      failed: true,
    };
  }
  if (ready.length < targets.length) {
    const waiting = targets.filter((e) => !ready.includes(e)).map((e) => e.name);
    const done = ready.length ? `verified on ${ready.map((e) => e.name).join(', ')}; ` : '';
    return {
      condition: at(
        'Unknown',
        'WaitingForSync',
        `${done}${waiting.join(', ')}: the group or its profile is not synced there yet`,
      ),
      failed: false,
    };
  }
  return {
    condition: at(
      'True',
      'Verified',
      `GET /ipxe?mac=${mac} boots MatchboxProfile ${profileName} (generation ${profileGeneration}) on: ${names}`,
    ),
    failed: false,
  };
}

function stillVerified(
  previous: Condition | undefined,
  generation: number,
  profileGeneration: number,
  names: string,
  written: ReadonlySet<string> | undefined,
  targets: readonly Endpoint[],
): previous is Condition {
  if (previous?.status !== 'True' || previous.observedGeneration !== generation) return false;
  if (targets.some((e) => written?.has(e.address))) return false;
  const m = VERIFIED_FROM.exec(previous.message);
  return m !== null && Number(m[1]) === profileGeneration && m[2] === names;
}

function describeDiff(v: BootVerification): string {
  return v.diff.join(', ');
}

/** What Matchbox served the group's MAC differs from the profile, or its HTTP API did not answer. */
export class BootAnswerError extends Error {
  readonly reason: string;
  constructor(what: string, condition: ConditionInput) {
    super(`${what}: ${condition.message}`);
    this.name = 'BootAnswerError';
    this.reason = condition.reason;
  }
}

export interface BootAnswerDeps {
  store: ResourceStore;
  events: EventRecorder;
  pool: EndpointPool;
  metrics: MatchboxSyncMetrics;
  /** Group → profile, kept by the group sync controller. */
  profileRefs: ReferenceIndex;
  workers?: number;
}

/** BootAnswerVerified for every MatchboxGroup; re-checked when the group or its profile changes. */
export function matchboxBootAnswerController(deps: BootAnswerDeps): ControllerSpec {
  const { store, pool, profileRefs } = deps;
  return {
    name: 'matchboxgroup-bootanswer',
    for: GroupKind,
    watches: [{ kind: ProfileKind, map: (profile) => profileRefs.referrers(refOf(profile)) }],
    workers: deps.workers ?? 2,
    backoff: { baseMs: 2000, capMs: 300_000, jitter: 0.2 },
    async reconcile(req) {
      const group = await getOrUndefined<GroupObject>(store, GroupKind, req);
      if (!group || group.metadata.deletionTimestamp) return;
      let rendered: Group;
      try {
        rendered = renderGroup(group);
      } catch (error) {
        if (error instanceof RenderError) return;
        throw error;
      }
      const profileRef = { namespace: group.metadata.namespace!, name: group.spec.profileRef.name };
      const profile = await getOrUndefined<ProfileObject>(store, ProfileKind, profileRef);
      const verdict = await verifyGroupBootAnswer({
        group,
        rendered,
        status: group.status ?? {},
        profile,
        endpoints: pool.endpoints,
        metrics: deps.metrics,
      });
      const generation = group.metadata.generation ?? 1;
      const now = new Date();
      await updateStatus(deps, GroupKind, group, (status) => {
        // A verdict about an older generation than the stored object's is dropped; the newer
        // generation is queued already.
        if (status.observedGeneration !== undefined && status.observedGeneration > generation) return status;
        return verdict.condition
          ? withCondition(status, verdict.condition, now)
          : withoutCondition(status, BOOT_ANSWER_VERIFIED);
      });
      if (verdict.failed && verdict.condition)
        throw new BootAnswerError(describe(GroupKind, req), verdict.condition);
    },
  };
}

async function getOrUndefined<T extends Resource>(
  store: ResourceStore,
  kind: ResourceKind,
  ref: ObjectRef,
): Promise<T | undefined> {
  try {
    return await store.get<T>(kind, ref);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}
