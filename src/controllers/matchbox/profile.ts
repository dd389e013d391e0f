// MatchboxProfile sync: writes the profile (and its generic template, inline or from a Secret)
// to every Matchbox endpoint, in place, and removes both from every endpoint on deletion.
import { createHash } from 'node:crypto';
import { RenderError, type RenderedProfile, renderProfile } from '../../matchbox/render.ts';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { isNotFound } from '../../runtime/errors.ts';
import { addFinalizer, hasFinalizer } from '../../runtime/finalizers.ts';
import { objectKey, refOf } from '../../runtime/resource.ts';
import type { Endpoint } from './endpoints.ts';
import { ProfileKind, type ProfileObject } from './kinds.ts';
import { ReferenceIndex } from './references.ts';
import { readSecretKey, SecretKind, SecretUnavailableError } from './secrets.ts';
import {
  FINALIZER,
  removeFromEveryEndpoint,
  reportBlocked,
  type SyncDeps,
  writeToEveryEndpoint,
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
      let rendered: RenderedProfile;
      try {
        rendered = renderProfile(obj, deps.owner);
      } catch (error) {
        if (!(error instanceof RenderError)) throw error;
        // The spec cannot change by retrying; a new generation re-queues it.
        await reportBlocked(deps, ProfileKind, obj, 'InvalidSpec', error.message);
        return;
      }
      const target = { kind: 'profile', id: rendered.profile.id } as const;
      if (obj.metadata.deletionTimestamp) {
        secretRefs.delete(req.key);
        await removeFromEveryEndpoint(deps, ProfileKind, obj, target, async (e) => {
          await deleteProfile(e, target.id);
          writtenGeneric.get(e.address)?.delete(target.id);
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
          deps,
          ProfileKind,
          obj,
          'GenericConfigUnavailable',
          `spec.genericConfig.secretRef: ${error.message}`,
        );
        return;
      }
      const hash = config === undefined ? '' : createHash('sha256').update(config).digest('hex');
      const written = (e: Endpoint) => writtenGeneric.get(e.address)!;
      await writeToEveryEndpoint(
        deps,
        ProfileKind,
        obj,
        target,
        async (e) => {
          await putProfile(e, rendered, config);
          written(e).set(target.id, hash);
        },
        // A template from a Secret changes without a new generation: compare what was written.
        { stale: (e) => config !== undefined && written(e).get(target.id) !== hash },
      );
    },
  };
}
