// The ResourceKinds the BareMetalHost controller reads and writes.
import { BareMetalHostKind, MatchboxGroupKind, MatchboxProfileKind } from '../../crds/index.ts';
import type { ResourceKind } from '../../runtime/resource.ts';

function resourceKind(d: { group: string; version: string; kind: string; plural: string }): ResourceKind {
  return { group: d.group, version: d.version, kind: d.kind, plural: d.plural, namespaced: true };
}

export const HOST_KIND = resourceKind(BareMetalHostKind);
export const PROFILE_KIND = resourceKind(MatchboxProfileKind);
export const GROUP_KIND = resourceKind(MatchboxGroupKind);
export const SECRET_KIND: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
};
