// Read-modify-write of a BareMetalHost's status for the config server and the event sink: a merge
// patch guarded by the resourceVersion it was computed from, retried on conflict, so conditions
// (a list, replaced whole by a merge patch) written by the host controller meanwhile are never lost.
import type { BareMetalHost, BareMetalHostStatus } from '../crds/baremetalhost.ts';
import { type ConditionInput, setCondition } from '../runtime/conditions.ts';
import type { ObjectRef, Resource } from '../runtime/resource.ts';
import { retryOnConflict } from '../runtime/retry.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { HOST_KIND } from './kinds.ts';

export type Host = BareMetalHost & Resource;

/** What a mutation may change; `conditions` are set by type (observedGeneration added). */
export interface HostStatusChange {
  talos?: Record<string, unknown>;
  conditions?: Omit<ConditionInput, 'observedGeneration'>[];
  lastObservedBoot?: BareMetalHostStatus['lastObservedBoot'];
}

/**
 * Applies `decide(host)` to the current host; `decide` returns undefined to change nothing.
 * Returns the host as written (or as read when unchanged).
 */
export async function changeHostStatus(
  store: ResourceStore,
  ref: ObjectRef,
  decide: (host: Host) => HostStatusChange | undefined,
  now: () => Date = () => new Date(),
): Promise<Host> {
  return retryOnConflict(
    async () => {
      const host = await store.get<Host>(HOST_KIND, ref);
      const change = decide(host);
      if (!change) return host;
      const patch: Record<string, unknown> = {};
      if (change.talos) patch.talos = change.talos;
      if (change.lastObservedBoot) patch.lastObservedBoot = change.lastObservedBoot;
      if (change.conditions?.length) {
        let conditions = host.status?.conditions ?? [];
        for (const c of change.conditions) {
          conditions = setCondition(
            conditions,
            { ...c, observedGeneration: host.metadata.generation ?? 0 },
            now(),
          );
        }
        if (JSON.stringify(conditions) !== JSON.stringify(host.status?.conditions ?? []))
          patch.conditions = conditions;
      }
      if (Object.keys(patch).length === 0) return host;
      return store.patchStatus<Host>(HOST_KIND, ref, patch, {
        resourceVersion: host.metadata.resourceVersion,
      });
    },
    { attempts: 8 },
  );
}
