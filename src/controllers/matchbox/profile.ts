// MatchboxProfile sync: writes the profile (and its generic template, inline or from a Secret)
// to every Matchbox endpoint, in place, and removes both from every endpoint on deletion.
import { createHash } from 'node:crypto';
import { RenderError, type RenderedProfile, renderProfile } from '../../matchbox/render.ts';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { isNotFound } from '../../runtime/errors.ts';
import { addFinalizer, hasFinalizer } from '../../runtime/finalizers.ts';
import { describe, objectKey, refOf } from '../../runtime/resource.ts';
import type { Endpoint } from './endpoints.ts';
import { ProfileKind, type ProfileObject } from './kinds.ts';
import { ReferenceIndex } from './references.ts';
import { readSecretKey, SecretKind, SecretUnavailableError } from './secrets.ts';
import { errorText, isCurrentOn, SYNCED, withCondition } from './status.ts';
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

/** Writes the profile to one endpoint: its generic template first, so the profile never links to nothing. */
export async function putProfile(
  endpoint: Endpoint,
  rendered: RenderedProfile,
  config: Buffer | undefined,
): Promise<void> {
  const { profile } = rendered;
  if (config !== undefined) await endpoint.call('GenericPut', (c) => c.genericPut(profile.id, config));
  await endpoint.call('ProfilePut', (c) => c.profilePut(profile));
  // A template dropped from the spec is removed too (deleting a missing one is success).
  if (config === undefined) await endpoint.call('GenericDelete', (c) => c.genericDelete(profile.id));
}

/** Removes the profile and the generic template metalbox wrote for it. */
export async function deleteProfile(endpoint: Endpoint, id: string): Promise<void> {
  await endpoint.call('ProfileDelete', (c) => c.profileDelete(id));
  await endpoint.call('GenericDelete', (c) => c.genericDelete(id));
}

/** The generic template's bytes, read from the spec or its Secret. */
export async function genericConfig(
  deps: Pick<SyncDeps, 'store'>,
  rendered: RenderedProfile,
): Promise<Buffer | undefined> {
  const generic = rendered.generic;
  if (!generic) return undefined;
  if ('inline' in generic) return Buffer.from(generic.inline, 'utf8');
  const { namespace, name, key } = generic.secretRef;
  return readSecretKey(deps.store, { namespace, name }, key);
}

export function matchboxProfileController(deps: SyncDeps & { workers?: number }): ControllerSpec {
  const { store, pool } = deps;
  /** Profile → the Secret its generic template comes from. */
  const secretRefs = new ReferenceIndex();
  /** endpoint address → profile id → sha256 of the generic template last written there. */
  const writtenGeneric = new Map<string, Map<string, string>>(
    pool.endpoints.map((e) => [e.address, new Map()]),
  );

  return {
    name: 'matchboxprofile-sync',
    for: ProfileKind,
    watches: [{ kind: SecretKind, map: (secret) => secretRefs.referrers(refOf(secret)) }],
    workers: deps.workers ?? 2,
    backoff: { baseMs: 1000, capMs: 120_000, jitter: 0.2 },
    async reconcile(req, ctx) {
      deps.arm(ctx.signal);
      let obj: ProfileObject;
      try {
        obj = await store.get<ProfileObject>(ProfileKind, req);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        secretRefs.delete(req.key);
        return;
      }
      const what = describe(ProfileKind, req);
      let rendered: RenderedProfile;
      try {
        rendered = renderProfile(obj);
      } catch (error) {
        if (!(error instanceof RenderError)) throw error;
        // The spec cannot change by retrying; a new generation re-queues it.
        await reportBlocked(obj, 'InvalidSpec', error.message);
        return;
      }
      const id = rendered.profile.id;
      if (obj.metadata.deletionTimestamp) {
        secretRefs.delete(req.key);
        await finalize(deps, ProfileKind, obj, id, async (e) => {
          await e.withLock('profile', id, async () => {
            await deleteProfile(e, id);
            e.noteWrite('profile', id, {
              uid: obj.metadata.uid ?? '',
              generation: obj.metadata.generation ?? 1,
              deleted: true,
            });
          });
          writtenGeneric.get(e.address)?.delete(id);
        });
        return;
      }
      if (!hasFinalizer(obj, FINALIZER))
        obj = await addFinalizer<ProfileObject>(store, ProfileKind, req, FINALIZER);

      const ref =
        rendered.generic && 'secretRef' in rendered.generic ? rendered.generic.secretRef : undefined;
      secretRefs.set(req.key, ref ? [objectKey({ namespace: ref.namespace, name: ref.name })] : []);
      let config: Buffer | undefined;
      try {
        config = await genericConfig(deps, rendered);
      } catch (error) {
        if (!(error instanceof SecretUnavailableError)) throw error;
        // The Secret watch re-queues this profile when the Secret appears or changes.
        await reportBlocked(
          obj,
          'GenericConfigUnavailable',
          `spec.genericConfig.secretRef: ${error.message}`,
        );
        return;
      }
      const hash = config === undefined ? '' : createHash('sha256').update(config).digest('hex');
      const generation = obj.metadata.generation ?? 1;
      const uid = obj.metadata.uid ?? '';
      const outcomes = await onEveryEndpoint(pool.endpoints, async (e) => {
        const entry = obj.status?.endpoints?.find((s) => s.endpoint === e.address);
        const written = writtenGeneric.get(e.address)!;
        // A template from a Secret changes without a new generation: compare what was written.
        if (isCurrentOn(entry, generation) && (config === undefined || written.get(id) === hash))
          return 'current';
        await e.withLock('profile', id, async () => {
          await putProfile(e, rendered, config);
          e.noteWrite('profile', id, { uid, generation, deleted: false });
        });
        written.set(id, hash);
        return 'written';
      });
      const now = new Date();
      await updateStatus(deps, ProfileKind, obj, (status) =>
        syncStatus(status, generation, pool, id, outcomes, now),
      );
      const failures = failuresOf(outcomes);
      if (failures.size > 0) throw new EndpointsFailedError(what, 'writing it', failures, pool.endpoints);
    },
  };

  /** Synced=False for a reason no endpoint write can fix (bad spec, missing Secret). */
  async function reportBlocked(obj: ProfileObject, reason: string, message: string): Promise<void> {
    const generation = obj.metadata.generation ?? 1;
    const now = new Date();
    await updateStatus(deps, ProfileKind, obj, (status) =>
      withCondition(
        { ...status, observedGeneration: generation },
        {
          type: SYNCED,
          status: 'False',
          reason,
          message: errorText(message),
          observedGeneration: generation,
        },
        now,
      ),
    );
  }
}
