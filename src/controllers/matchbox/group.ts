import type { Group } from '../../matchbox/objects.ts';
import { RenderError, renderGroup } from '../../matchbox/render.ts';
import type { ConditionInput } from '../../runtime/conditions.ts';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { isNotFound } from '../../runtime/errors.ts';
import { addFinalizer, hasFinalizer } from '../../runtime/finalizers.ts';
import { objectKey, refOf } from '../../runtime/resource.ts';
import type { Endpoint } from './endpoints.ts';
import { GroupKind, type GroupObject, ProfileKind, type ProfileObject } from './kinds.ts';
import type { ReferenceIndex } from './references.ts';
import { BOOT_ANSWER_VERIFIED, PROFILE_RESOLVED, withCondition, withoutCondition } from './status.ts';
import {
  FINALIZER,
  removeFromEveryEndpoint,
  reportBlocked,
  type SyncDeps,
  writeToEveryEndpoint,
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
  /** profileRefs: group → the profile it refers to (shared with the verification controller). */
  const { store, profileRefs } = deps;

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
      const namespace = obj.metadata.namespace!;
      const profileRef = { namespace, name: obj.spec.profileRef.name };
      let rendered: Group;
      try {
        rendered = renderGroup(obj, deps.owner);
      } catch (error) {
        if (!(error instanceof RenderError)) throw error;
        // The spec cannot change by retrying; a new generation re-queues it.
        await reportBlocked(deps, GroupKind, obj, 'InvalidSpec', error.message);
        return;
      }
      const target = { kind: 'group', id: rendered.id } as const;
      if (obj.metadata.deletionTimestamp) {
        profileRefs.delete(req.key);
        await removeFromEveryEndpoint(deps, GroupKind, obj, target, (e) => deleteGroup(e, target.id));
        return;
      }
      if (!hasFinalizer(obj, FINALIZER))
        obj = await addFinalizer<GroupObject>(store, GroupKind, req, FINALIZER);
      profileRefs.set(req.key, [objectKey(profileRef)]);

      // A group whose profile is missing is still written (it starts working when the profile
      // appears), but says why Matchbox answers its machines with 404 meanwhile.
      const profile = await getProfile(profileRef);
      const generation = obj.metadata.generation ?? 1;
      await writeToEveryEndpoint(deps, GroupKind, obj, target, (e) => putGroup(e, rendered), {
        status: (status) => {
          const now = new Date();
          const next = withCondition(status, profileCondition(profileRef, profile, generation), now);
          // BootAnswerVerified belongs to the verification controller, when it runs.
          return deps.verifyBootAnswers ? next : withoutCondition(next, BOOT_ANSWER_VERIFIED);
        },
      });
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
