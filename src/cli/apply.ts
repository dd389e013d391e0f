// `metalbox apply -f <file|dir|->`: creates or updates every object of the manifests in a store
// without kubectl (etcd or the embedded store; kube works too). metalbox.io objects are validated and
// defaulted exactly as the apiserver does with the CRDs; Secrets' stringData is folded into data
// and sealed at rest by the store. Existing objects are updated as kubectl apply updates custom
// resources: a JSON merge patch that sets what the manifest says and removes what the previous
// apply set and this manifest no longer has (remembered in the last-applied annotation), so fields
// others set (status, finalizers, a controller's annotations) are kept. Secrets are not
// remembered that way (the annotation would hold their values in plain text): the manifest
// replaces their data, labels and annotations.
import { validateObject } from '../crds/validate.ts';
import { isConflict, isNotFound } from '../runtime/errors.ts';
import type { Resource } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { mergePatch } from '../stores/merge-patch.ts';
import { readManifests } from './manifest-files.ts';
import { type CliKind, kindOfObject } from './resources.ts';
import {
  type CliIo,
  formatError,
  invalidMessage,
  NAMESPACE_FLAGS_HELP,
  namespaceFrom,
  parseCommandArgs,
  processIo,
  runCommand,
  UsageError,
  usageWithStoreFlags,
} from './store-command.ts';
import type { StoreFlagValues } from './store-flag.ts';

const USAGE =
  usageWithStoreFlags(`Usage: metalbox apply -f <file|dir|-> [-f ...] [-n namespace] --store <store>

Creates or updates the objects in the manifests (BareMetalHost, MatchboxProfile, MatchboxGroup,
TalosMachineConfig, Secret, Namespace), validated as the apiserver validates them.

  -f, --filename <path>         manifest file, directory (its .yaml/.yml/.json files) or - for stdin
${NAMESPACE_FLAGS_HELP.split('\n')[0]}
                                for objects that name none; an object in another namespace is an error

Exit code 1 when any object was rejected (the others are applied).
`);

export function run(args: string[]): Promise<number> {
  return main(args, processIo);
}

export function main(args: string[], io: CliIo): Promise<number> {
  return runCommand('apply', USAGE, io, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      filename: { type: 'string', short: 'f', multiple: true },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const files = (values.filename as string[] | undefined) ?? [];
    if (files.length === 0) throw new UsageError('-f is required');
    const explicitNs = values.namespace !== undefined;
    const namespace = namespaceFrom(values, io.env);
    return {
      values: values as StoreFlagValues,
      run: async (store) => {
        const { documents, problems } = readManifests(files);
        let failed = problems.length;
        for (const p of problems) io.err(`error: ${p.source}: ${p.message}\n`);
        // Namespaces first, as a kubectl user would order them; otherwise file order.
        const ordered = [
          ...documents.filter((d) => (d.object as Resource | null)?.kind === 'Namespace'),
          ...documents.filter((d) => (d.object as Resource | null)?.kind !== 'Namespace'),
        ];
        for (const doc of ordered) {
          const line = await applyOne(store, doc.object, doc.source, namespace, explicitNs);
          if (line.ok) io.out(`${line.text}\n`);
          else {
            io.err(`${line.text}\n`);
            failed++;
          }
        }
        return failed > 0 ? 1 : 0;
      },
    };
  });
}

type Outcome = { ok: boolean; text: string };

async function applyOne(
  store: ResourceStore,
  input: unknown,
  source: string,
  namespace: string,
  explicitNs: boolean,
): Promise<Outcome> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, text: `error: ${source}: not an object` };
  }
  const raw = structuredClone(input) as Resource;
  const kind = kindOfObject(raw.apiVersion, raw.kind);
  const name = typeof raw.metadata?.name === 'string' ? raw.metadata.name : '';
  if (!kind) {
    return {
      ok: false,
      text: `error: resource mapping not found for name: "${name}" from "${source}": no matches for kind "${String(raw.kind)}" in version "${String(raw.apiVersion)}"`,
    };
  }
  raw.metadata ??= { name };
  if (kind.kind.namespaced) {
    if (raw.metadata.namespace && explicitNs && raw.metadata.namespace !== namespace) {
      return {
        ok: false,
        text: `error: ${source}: the namespace from the provided object "${raw.metadata.namespace}" does not match the namespace "${namespace}". You must pass '--namespace=${raw.metadata.namespace}' to perform this operation.`,
      };
    }
    raw.metadata.namespace ||= namespace;
  }
  let obj = raw;
  if (kind.definition) {
    const result = validateObject(raw);
    if (!result.ok) {
      const fields = result.errors.map((e) => ({ path: e.path, message: e.detail }));
      return {
        ok: false,
        text: `Error from store (Invalid): error when applying "${source}": ${invalidMessage(kind, name, fields)}`,
      };
    }
    obj = result.object as unknown as Resource;
  }
  const ref = kind.kind.namespaced ? { namespace: obj.metadata.namespace, name } : { name };
  for (let attempt = 1; ; attempt++) {
    try {
      let current: Resource | undefined;
      try {
        current = await store.get(kind.kind, ref);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      if (!current) {
        const manifest = withoutServerFields(withoutStatus(obj));
        await store.create(kind.kind, isSecret(kind) ? manifest : withLastApplied(manifest));
        return { ok: true, text: `${kind.singularQualified}/${name} created` };
      }
      const next = isSecret(kind) ? replaced(current, obj) : applied(current, obj);
      const written = await store.update(kind.kind, next);
      const same = written.metadata.resourceVersion === current.metadata.resourceVersion;
      return { ok: true, text: `${kind.singularQualified}/${name} ${same ? 'unchanged' : 'configured'}` };
    } catch (error) {
      if (isConflict(error) && attempt < 5) continue;
      return { ok: false, text: applyError(error, kind, name, source) };
    }
  }
}

/** Where the manifest an object was last applied from is kept (kubectl keeps it likewise). */
export const LAST_APPLIED_ANNOTATION = 'metalbox.io/last-applied-configuration';

const isSecret = (kind: CliKind) => kind.kind.group === '' && kind.kind.kind === 'Secret';

/** The manifest, remembered in itself for the next apply (never used for Secrets). */
function withLastApplied(manifest: Resource): Resource {
  const { [LAST_APPLIED_ANNOTATION]: _previous, ...annotations } = manifest.metadata.annotations ?? {};
  const { annotations: _all, ...metadata } = manifest.metadata;
  const remembered: Resource = {
    ...manifest,
    metadata: Object.keys(annotations).length > 0 ? { ...metadata, annotations } : metadata,
  };
  return {
    ...manifest,
    metadata: {
      ...manifest.metadata,
      annotations: { ...annotations, [LAST_APPLIED_ANNOTATION]: JSON.stringify(remembered) },
    },
  };
}

/**
 * The three-way update: the manifest's fields set, the fields the last apply set and this manifest
 * dropped removed (null in the merge patch), every other field of the stored object kept.
 */
function applied(current: Resource, manifest: Resource): Resource {
  const modified = withLastApplied(withoutServerFields(withoutStatus(manifest))) as unknown as Record<
    string,
    unknown
  >;
  let last: unknown;
  try {
    last = JSON.parse(current.metadata.annotations?.[LAST_APPLIED_ANNOTATION] ?? 'null');
  } catch {
    // An unreadable record counts as none: nothing is removed, as for an object never applied.
  }
  const patch = combined(removals(last, modified), modified);
  const next = mergePatch(withoutStatus(current), patch) as Resource;
  return current.status === undefined ? next : { ...next, status: current.status };
}

/** A manifest saved from `get -o yaml` carries the server's fields; they are not the user's to set. */
function withoutServerFields(manifest: Resource): Resource {
  const {
    uid: _uid,
    resourceVersion: _rv,
    generation: _gen,
    creationTimestamp: _ct,
    deletionTimestamp: _dt,
    ...metadata
  } = manifest.metadata;
  return { ...manifest, metadata };
}

/** `b` over `a`, objects merged recursively, b's nulls kept (they remove the field when patched). */
function combined(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [key, value] of Object.entries(b))
    out[key] = isObject(out[key]) && isObject(value) ? combined(out[key], value) : value;
  return out;
}

/** A merge patch removing what `last` has and `modified` does not (recursing into objects). */
function removals(last: unknown, modified: unknown): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  if (!isObject(last) || !isObject(modified)) return patch;
  for (const [key, value] of Object.entries(last)) {
    if (!(key in modified)) patch[key] = null;
    else if (isObject(value) && isObject(modified[key])) {
      const nested = removals(value, modified[key]);
      if (Object.keys(nested).length > 0) patch[key] = nested;
    }
  }
  return patch;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A Secret's manifest over the stored Secret: system metadata and controller-owned lists kept. */
function replaced(current: Resource, manifest: Resource): Resource {
  const { status: _s, metadata: m, ...content } = manifest;
  const meta = { ...current.metadata };
  for (const key of ['labels', 'annotations'] as const) {
    if (m[key] === undefined) delete meta[key];
    else meta[key] = m[key];
  }
  if (m.finalizers !== undefined) meta.finalizers = m.finalizers;
  if (m.ownerReferences !== undefined) meta.ownerReferences = m.ownerReferences;
  return { ...content, metadata: meta } as Resource;
}

function withoutStatus(obj: Resource): Resource {
  const { status: _s, ...rest } = obj;
  return rest as Resource;
}

function applyError(error: unknown, kind: CliKind, name: string, source: string): string {
  const text = formatError(error, kind, name);
  return text.startsWith('Error from store (')
    ? text.replace(/^(Error from store \([A-Za-z]+\)): /, `$1: error when applying "${source}": `)
    : `error: ${source}: ${text.replace(/^error: /, '')}`;
}
