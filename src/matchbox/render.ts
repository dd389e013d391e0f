// Pure functions from metalbox's MatchboxProfile/MatchboxGroup objects to the exact Matchbox
// objects written to every endpoint, and the id scheme that marks what metalbox owns.
//
// Ownership: every object metalbox writes has the id `<namespace>.<name>` of the resource that
// declares it (profiles, groups, and the generic template file of a profile alike), and a group's
// `profile` is the id of the profile it references. A Kubernetes namespace is a DNS label (no
// dot) and a name a DNS subdomain, so the first dot splits the id back into namespace and name
// without any state: after a restart, drift repair reads ProfileList/GroupList and knows which
// resource each object belongs to. Ids with no dot, or whose prefix is not a DNS label (Terraform
// and hand-written ids such as `talos-cp-01`), are foreign and never touched. The id is also the
// FileStore file name (`groups/<id>.json`), so it is limited to 250 characters. Which metalbox
// instance wrote an object is in its `name` (owner.ts): given an owner, the render carries it.

import type { SecretKeyReference } from '../crds/common.ts';
import type { MatchboxGroup } from '../crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../crds/matchboxprofile.ts';
import { type Group, isMacKey, normalizeMac, type Profile } from './objects.ts';
import { markedName } from './owner.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** NAME_MAX (255) minus the `.json` Matchbox appends. */
export const MAX_ID_LENGTH = 250;

export interface ResourceKey {
  namespace: string;
  name: string;
}

/** A manifest that cannot become a Matchbox object; `field` names the offending field. */
export class RenderError extends Error {
  readonly object: string;
  readonly field: string;
  constructor(object: string, field: string, message: string) {
    super(`${object}: ${field}: ${message}`);
    this.name = 'RenderError';
    this.object = object;
    this.field = field;
  }
}

/** The Matchbox id of the resource `namespace/name`: `<namespace>.<name>`. */
export function matchboxId(key: ResourceKey): string {
  return `${key.namespace}.${key.name}`;
}

/** The resource a Matchbox id belongs to, or undefined when the id is not one metalbox writes. */
export function parseMatchboxId(id: string): ResourceKey | undefined {
  const dot = id.indexOf('.');
  if (dot < 0 || id.length > MAX_ID_LENGTH) return undefined;
  const namespace = id.slice(0, dot);
  const name = id.slice(dot + 1);
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) return undefined;
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) return undefined;
  return { namespace, name };
}

/** True when metalbox wrote (and may repair or delete) the Matchbox object with this id. */
export const isOwnedId = (id: string): boolean => parseMatchboxId(id) !== undefined;

/** Where a profile's generic template comes from; the file is written as generic/<name>. */
export type GenericSource =
  | { name: string; inline: string }
  | { name: string; secretRef: SecretKeyReference & { namespace: string } };

export interface RenderedProfile {
  profile: Profile;
  generic?: GenericSource;
}

function keyOf(object: { kind: string; metadata: { name?: string; namespace?: string } }): ResourceKey {
  const { name, namespace } = object.metadata;
  const label = `${object.kind} ${namespace ?? '?'}/${name ?? '?'}`;
  if (!name) throw new RenderError(label, 'metadata.name', 'is required');
  if (!namespace) throw new RenderError(label, 'metadata.namespace', 'is required');
  const key = { namespace, name };
  const id = matchboxId(key);
  if (id.length > MAX_ID_LENGTH) {
    throw new RenderError(
      label,
      'metadata.name',
      `Matchbox id "${id}" is ${id.length} characters; Matchbox stores it as a file name, so ` +
        `namespace and name together must stay within ${MAX_ID_LENGTH}`,
    );
  }
  return key;
}

/** The Matchbox `name`: the owner's mark and the displayName, or the displayName alone without an owner. */
const nameFor = (displayName: string | undefined, owner: string | undefined) =>
  owner === undefined ? displayName || undefined : markedName(owner, displayName);

export function renderProfile(object: MatchboxProfile, owner?: string): RenderedProfile {
  const key = keyOf(object);
  const id = matchboxId(key);
  const { spec } = object;
  const profile: Profile = { id };
  const name = nameFor(spec.displayName, owner);
  if (name) profile.name = name;
  if (spec.kernel !== undefined) {
    profile.boot = { kernel: spec.kernel, initrd: [...(spec.initrd ?? [])], args: [...(spec.args ?? [])] };
  }
  if (!spec.genericConfig) return { profile };
  profile.generic_id = id;
  const { inline, secretRef } = spec.genericConfig;
  if (secretRef)
    return { profile, generic: { name: id, secretRef: { ...secretRef, namespace: key.namespace } } };
  return { profile, generic: { name: id, inline: inline ?? '' } };
}

export function renderGroup(object: MatchboxGroup, owner?: string): Group {
  const key = keyOf(object);
  const name = nameFor(object.spec.displayName, owner);
  const { spec } = object;
  const selector: Record<string, string> = {};
  for (const [k, value] of Object.entries(spec.selector ?? {})) {
    if (!isMacKey(k)) {
      selector[k] = value;
      continue;
    }
    const mac = normalizeMac(value);
    if (mac === undefined) {
      throw new RenderError(
        `MatchboxGroup ${key.namespace}/${key.name}`,
        `spec.selector.${k}`,
        `"${value}" is not a MAC address (use aa:bb:cc:dd:ee:ff)`,
      );
    }
    selector[k] = mac;
  }
  // Key order as in Matchbox's own group files (id, name, profile, selector, metadata).
  return {
    id: matchboxId(key),
    ...(name ? { name } : {}),
    profile: matchboxId({ namespace: key.namespace, name: spec.profileRef.name }),
    selector,
    metadata: structuredClone(spec.metadata ?? {}),
  };
}
