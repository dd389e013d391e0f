// The runtime's kind descriptors of the two kinds the Matchbox sync controllers reconcile.
import { MatchboxGroupKind, MatchboxProfileKind } from '../../crds/index.ts';
import type { MatchboxGroup } from '../../crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../../crds/matchboxprofile.ts';
import type { ObjectMeta, ResourceKind } from '../../runtime/resource.ts';
import type { SyncStatus } from './status.ts';

/** An object as a store returns it: named, with the status the sync controllers write. */
type Stored<T extends { metadata: object }> = Omit<T, 'metadata' | 'status'> & {
  metadata: T['metadata'] & ObjectMeta;
  status?: SyncStatus;
};
export type ProfileObject = Stored<MatchboxProfile>;
export type GroupObject = Stored<MatchboxGroup>;

export const ProfileKind: ResourceKind = {
  group: MatchboxProfileKind.group,
  version: MatchboxProfileKind.version,
  kind: MatchboxProfileKind.kind,
  plural: MatchboxProfileKind.plural,
  namespaced: true,
};

export const GroupKind: ResourceKind = {
  group: MatchboxGroupKind.group,
  version: MatchboxGroupKind.version,
  kind: MatchboxGroupKind.kind,
  plural: MatchboxGroupKind.plural,
  namespaced: true,
};
