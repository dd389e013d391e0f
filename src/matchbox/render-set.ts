// Renders a whole set of manifests (as read from files) into the Matchbox objects metalbox would
// write: the offline `metalbox render`, with every problem tied to the document it came from.
import { createHash } from 'node:crypto';
import type { MatchboxGroup } from '../crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../crds/matchboxprofile.ts';
import { validateObject } from '../crds/validate.ts';
import type { Group, Profile } from './objects.ts';
import { matchboxId, RenderError, renderGroup, renderProfile } from './render.ts';

/** One parsed document and where it came from (`file.yaml#2`). */
export interface SourceDocument {
  source: string;
  object: unknown;
}

export interface RenderNote {
  source: string;
  message: string;
}

/** A generic template as it would be written to generic/<name>. */
export type RenderedGeneric =
  | { name: string; source: 'inline'; config: string }
  /** Secret content is never printed: its size and digest show whether it changed. */
  | { name: string; source: string; bytes: number; sha256: string }
  | { name: string; source: string; missing: true };

export interface RenderedSet {
  profiles: Profile[];
  groups: Group[];
  generic: RenderedGeneric[];
  errors: RenderNote[];
  warnings: RenderNote[];
  /** Documents of other kinds, by kind: not Matchbox objects, so not rendered. */
  ignored: Record<string, number>;
}

type Meta = { name?: string; namespace?: string };

function secretValue(secret: Record<string, unknown>, key: string): Buffer | undefined {
  const stringData = secret.stringData as Record<string, unknown> | undefined;
  if (typeof stringData?.[key] === 'string') return Buffer.from(stringData[key] as string, 'utf8');
  const data = secret.data as Record<string, unknown> | undefined;
  if (typeof data?.[key] === 'string') return Buffer.from(data[key] as string, 'base64');
  return undefined;
}

/**
 * Validates and renders MatchboxProfile/MatchboxGroup documents; Secrets in the set resolve
 * generic templates by reference. Objects without a namespace get `defaultNamespace`.
 */
export function renderManifests(
  documents: readonly SourceDocument[],
  opts: { defaultNamespace: string },
): RenderedSet {
  const out: RenderedSet = { profiles: [], groups: [], generic: [], errors: [], warnings: [], ignored: {} };
  const secrets = new Map<string, Record<string, unknown>>();
  const profiles: { source: string; object: MatchboxProfile }[] = [];
  const groups: { source: string; object: MatchboxGroup }[] = [];
  const seen = new Map<string, string>();

  for (const { source, object } of documents) {
    if (object === null || object === undefined) continue;
    const { apiVersion, kind, metadata } = (object ?? {}) as {
      apiVersion?: unknown;
      kind?: unknown;
      metadata?: Meta;
    };
    if (apiVersion === 'v1' && kind === 'Secret') {
      secrets.set(
        `${metadata?.namespace ?? opts.defaultNamespace}/${metadata?.name}`,
        object as Record<string, unknown>,
      );
      continue;
    }
    if (apiVersion !== 'metalbox.io/v1alpha1' || (kind !== 'MatchboxProfile' && kind !== 'MatchboxGroup')) {
      const label = typeof kind === 'string' ? kind : '(no kind)';
      out.ignored[label] = (out.ignored[label] ?? 0) + 1;
      continue;
    }
    const withNamespace = {
      ...(object as object),
      metadata: { ...(metadata ?? {}), namespace: metadata?.namespace ?? opts.defaultNamespace },
    };
    const result = validateObject(withNamespace);
    const label = `${kind} ${withNamespace.metadata.namespace}/${metadata?.name ?? '?'}`;
    if (!result.ok) {
      for (const e of result.errors) out.errors.push({ source, message: `${label}: ${e.message}` });
      continue;
    }
    const key = `${kind}/${withNamespace.metadata.namespace}/${metadata?.name}`;
    const previous = seen.get(key);
    if (previous) {
      out.errors.push({ source, message: `${label} is also defined in ${previous}` });
      continue;
    }
    seen.set(key, source);
    if (kind === 'MatchboxProfile') profiles.push({ source, object: result.object as MatchboxProfile });
    else groups.push({ source, object: result.object as MatchboxGroup });
  }

  const profileIds = new Set<string>();
  for (const { source, object } of profiles) {
    try {
      const { profile, generic } = renderProfile(object);
      out.profiles.push(profile);
      profileIds.add(profile.id);
      if (!generic) continue;
      if ('inline' in generic) {
        out.generic.push({ name: generic.name, source: 'inline', config: generic.inline });
        continue;
      }
      const ref = generic.secretRef;
      const from = `Secret ${ref.namespace}/${ref.name} key ${ref.key}`;
      const secret = secrets.get(`${ref.namespace}/${ref.name}`);
      const value = secret ? secretValue(secret, ref.key) : undefined;
      if (!value) {
        out.warnings.push({
          source,
          message: `generic template of ${profile.id} comes from ${from}, which is not in the input`,
        });
        out.generic.push({ name: generic.name, source: from, missing: true });
        continue;
      }
      out.generic.push({
        name: generic.name,
        source: from,
        bytes: value.length,
        sha256: createHash('sha256').update(value).digest('hex'),
      });
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      out.errors.push({ source, message: error.message });
    }
  }
  for (const { source, object } of groups) {
    try {
      const group = renderGroup(object);
      out.groups.push(group);
      if (!profileIds.has(group.profile)) {
        const ns = object.metadata.namespace!;
        out.warnings.push({
          source,
          message: `MatchboxGroup ${ns}/${object.metadata.name} refers to MatchboxProfile ${ns}/${object.spec.profileRef.name}, which is not in the input (Matchbox id ${matchboxId({ namespace: ns, name: object.spec.profileRef.name })})`,
        });
      }
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      out.errors.push({ source, message: error.message });
    }
  }
  const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  out.profiles.sort(byId);
  out.groups.sort(byId);
  out.generic.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out;
}
