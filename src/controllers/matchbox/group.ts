import type { Group } from '../../matchbox/objects.ts';
import { RenderError, renderGroup } from '../../matchbox/render.ts';
import type { ConditionInput } from '../../runtime/conditions.ts';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { isNotFound } from '../../runtime/errors.ts';
import { addFinalizer, hasFinalizer } from '../../runtime/finalizers.ts';
import { describe, objectKey, refOf } from '../../runtime/resource.ts';
import type { Endpoint } from './endpoints.ts';
import { GroupKind, type GroupObject, ProfileKind, type ProfileObject } from './kinds.ts';
import type { ReferenceIndex } from './references.ts';
import {
  BOOT_ANSWER_VERIFIED,
  errorText,
  isCurrentOn,
  PROFILE_RESOLVED,
  SYNCED,
  withCondition,
  withoutCondition,
} from './status.ts';
import {
  EndpointsFailedError,
  FINALIZER,
  failuresOf,
  finalize,
  onEveryEndpoint,
  type SyncDeps,
  syncStatus,
  updateStatus,
} from './sync.ts';

export async function putGroup(endpoint: Endpoint, group: Group): Promise<void> {
  await endpoint.call('GroupPut', (c) => c.groupPut(group));
}

export async function deleteGroup(endpoint: Endpoint, id: string): Promise<void> {
  await endpoint.call('GroupDelete', (c) => c.groupDelete(id));
}

export function matchboxGroupController(
  deps: SyncDeps & { workers?: number; verifyBootAnswers: boolean; profileRefs: ReferenceIndex },
): ControllerSpec {
  const { store, pool } = deps;
  /** Group → the profile it refers to (shared with the verification controller). */
  const { profileRefs } = deps;

  return {
    name: 'matchboxgroup-sync',
    for: GroupKind,
    watches: [{ kind: ProfileKind, map: (profile) => profileRefs.referrers(refOf(profile)) }],
    workers: deps.workers ?? 8,
    backoff: { baseMs: 1000, capMs: 120_000, jitter: 0.2 },
    async reconcile(req, ctx) {
      deps.arm(ctx.signal);
      let obj: GroupObject;
      try {
        obj = await store.get<GroupObject>(GroupKind, req);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        profileRefs.delete(req.key);
        return;
      }
      const what = describe(GroupKind, req);
      const namespace = obj.metadata.namespace!;
      const profileRef = { namespace, name: obj.spec.profileRef.name };
      let rendered: Group;
      try {
        rendered = renderGroup(obj);
      } catch (error) {
        if (!(error instanceof RenderError)) throw error;
        const generation = obj.metadata.generation ?? 1;
        const now = new Date();
        await updateStatus(deps, GroupKind, obj, (status) =>
          withCondition(
            { ...status, observedGeneration: generation },
            {
              type: SYNCED,
              status: 'False',
              reason: 'InvalidSpec',
              message: errorText(error),
              observedGeneration: generation,
            },
            now,
          ),
        );
        return;
      }
      const id = rendered.id;
      if (obj.metadata.deletionTimestamp) {
        profileRefs.delete(req.key);
        await finalize(deps, GroupKind, obj, id, (e) =>
          e.withLock('group', id, async () => {
            await deleteGroup(e, id);
            e.noteWrite('group', id, {
              uid: obj.metadata.uid ?? '',
              generation: obj.metadata.generation ?? 1,
              deleted: true,
            });
          }),
        );
        return;
      }
      if (!hasFinalizer(obj, FINALIZER))
        obj = await addFinalizer<GroupObject>(store, GroupKind, req, FINALIZER);
      profileRefs.set(req.key, [objectKey(profileRef)]);

      const generation = obj.metadata.generation ?? 1;
      const uid = obj.metadata.uid ?? '';
      const outcomes = await onEveryEndpoint(pool.endpoints, async (e) => {
        const entry = obj.status?.endpoints?.find((s) => s.endpoint === e.address);
        if (isCurrentOn(entry, generation)) return 'current';
        await e.withLock('group', id, async () => {
          await putGroup(e, rendered);
          e.noteWrite('group', id, { uid, generation, deleted: false });
        });
        return 'written';
      });
      // A group whose profile is missing is still written (it starts working when the profile
      // appears), but says why Matchbox answers its machines with 404 meanwhile.
      const profile = await getProfile(profileRef);
      const now = new Date();
      await updateStatus(deps, GroupKind, obj, (status) => {
        let next = syncStatus(status, generation, pool, id, outcomes, now);
        next = withCondition(next, profileCondition(profileRef, profile, generation), now);
        // BootAnswerVerified belongs to the verification controller, when it runs.
        return deps.verifyBootAnswers ? next : withoutCondition(next, BOOT_ANSWER_VERIFIED);
      });
      const failures = failuresOf(outcomes);
      if (failures.size > 0) throw new EndpointsFailedError(what, 'writing it', failures, pool.endpoints);
    },
  };

  async function getProfile(ref: { namespace: string; name: string }): Promise<ProfileObject | undefined> {
    try {
      return await store.get<ProfileObject>(ProfileKind, ref);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}

function profileCondition(
  ref: { namespace: string; name: string },
  profile: ProfileObject | undefined,
  generation: number,
): ConditionInput {
  const name = `MatchboxProfile ${ref.namespace}/${ref.name}`;
  if (!profile) {
    return {
      type: PROFILE_RESOLVED,
      status: 'False',
      reason: 'ProfileNotFound',
      message: `${name} does not exist: Matchbox answers the machines this group matches with 404 until it is created`,
      observedGeneration: generation,
    };
  }
  if (profile.metadata.deletionTimestamp) {
    return {
      type: PROFILE_RESOLVED,
      status: 'False',
      reason: 'ProfileDeleting',
      message: `${name} is being deleted: once it is gone, Matchbox answers the machines this group matches with 404`,
      observedGeneration: generation,
    };
  }
  return {
    type: PROFILE_RESOLVED,
    status: 'True',
    reason: 'ProfileFound',
    message: `${name} exists`,
    observedGeneration: generation,
  };
}
