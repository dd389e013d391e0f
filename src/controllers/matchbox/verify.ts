// BootAnswerVerified: after a group is on an endpoint, ask that endpoint's HTTP API what the
// machine with the group's MAC would boot (GET /ipxe?mac=...) and compare it with the profile's
// kernel, initrd and args. Only endpoints holding the current group and profile are asked, so a
// profile still being written is "waiting", not a mismatch.
import { type BootVerification, MatchboxHttpError, verifyBootAnswer } from '../../matchbox/http.ts';
import { type Group, isMacKey } from '../../matchbox/objects.ts';
import { renderProfile } from '../../matchbox/render.ts';
import type { Condition, ConditionInput } from '../../runtime/conditions.ts';
import type { Endpoint } from './endpoints.ts';
import type { GroupObject, ProfileObject } from './kinds.ts';
import type { MatchboxSyncMetrics } from './metrics.ts';
import { BOOT_ANSWER_VERIFIED, isCurrentOn, type SyncStatus } from './status.ts';

export interface VerifyInput {
  group: GroupObject;
  rendered: Group;
  /** The group's status after this reconcile's writes. */
  status: SyncStatus;
  profile: ProfileObject | undefined;
  endpoints: readonly Endpoint[];
  /** Endpoints (addresses) the group was written to in this reconcile. */
  written: ReadonlySet<string>;
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
  written: ReadonlySet<string>,
  targets: readonly Endpoint[],
): previous is Condition {
  if (previous?.status !== 'True' || previous.observedGeneration !== generation) return false;
  if (targets.some((e) => written.has(e.address))) return false;
  const m = VERIFIED_FROM.exec(previous.message);
  return m !== null && Number(m[1]) === profileGeneration && m[2] === names;
}

function describeDiff(v: BootVerification): string {
  return v.diff.join(', ');
}
