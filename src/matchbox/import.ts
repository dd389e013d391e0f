// Reads an existing Matchbox data directory (profiles/*.json, groups/*.json, generic/) and turns
// it into metalbox manifests: the migration path from a JSON/Terraform-managed Matchbox.
//
// Every file is either imported or reported with its name and the reason: Matchbox itself skips
// unreadable files silently (matchbox#560), which is exactly what an import must not do.
// Rules, following how Matchbox reads its FileStore (../shared/reference/matchbox.md §4):
// - A profile is found by its file name (groups name `profiles/<profile>.json`), so the file name
//   is its identity; a group's identity is its file name too.
// - Names that are not Kubernetes names are made into one (lowercase, other characters → '-');
//   the original file is recorded in the annotation metalbox.io/imported-from.
// - Generic templates become Secrets (they typically hold machine configs with cluster secrets),
//   referenced by genericConfig.secretRef, one Secret per template file.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { stringify } from 'yaml';
import type { MatchboxGroup } from '../crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../crds/matchboxprofile.ts';
import { validateObject } from '../crds/validate.ts';
import { isMacKey, normalizeMac } from './objects.ts';
import { displayNameOf } from './owner.ts';

export const IMPORTED_FROM_ANNOTATION = 'metalbox.io/imported-from';
/** The Secret key an imported generic template is stored under. */
export const GENERIC_SECRET_KEY = 'template';

/** A file that could not be imported (an error) or was imported with a caveat (a warning). */
export interface ImportNote {
  /** Path relative to the data dir, e.g. groups/cp-01.json. */
  file: string;
  message: string;
}

export interface SecretManifest {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  type: 'Opaque';
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}

export type ImportedManifest = SecretManifest | MatchboxProfile | MatchboxGroup;

export interface ImportResult {
  /** Secrets, then profiles, then groups, each sorted by name. */
  manifests: ImportedManifest[];
  errors: ImportNote[];
  warnings: ImportNote[];
  /** Matchbox ids of the imported objects, to delete from Matchbox once metalbox writes its own. */
  sourceIds: { profiles: string[]; groups: string[] };
}

/** A Kubernetes name for a Matchbox id (itself when it already is one). */
export function kubeName(id: string): string {
  const name = id
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/-?\.-?/g, '.')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name.slice(0, 200).replace(/[^a-z0-9]+$/, '');
}

class FileProblem extends Error {}

function readJsonObject(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new FileProblem(`cannot read: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FileProblem(`invalid JSON (${(error as Error).message}); Matchbox skips this file`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FileProblem('is not a JSON object; Matchbox skips this file');
  }
  return value as Record<string, unknown>;
}

function stringField(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new FileProblem(`"${key}" must be a string`);
  return v;
}

function stringList(obj: Record<string, unknown>, key: string, where: string): string[] | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new FileProblem(`"${where}.${key}" must be a list of strings`);
  }
  return v as string[];
}

/** The .json entries of a FileStore directory; anything else there is reported. */
function listJson(dataPath: string, dir: string, errors: ImportNote[]): string[] {
  let entries: string[];
  try {
    entries = readdirSync(join(dataPath, dir)).sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new Error(`cannot read ${join(dataPath, dir)}: ${code ?? error}`);
  }
  const files: string[] = [];
  for (const entry of entries) {
    const rel = `${dir}/${entry}`;
    if (statSync(join(dataPath, dir, entry)).isDirectory()) {
      errors.push({
        file: rel,
        message: 'is a directory; Matchbox does not read subdirectories of ' + `${dir}/`,
      });
    } else if (!entry.endsWith('.json')) {
      errors.push({ file: rel, message: `is not a .json file; Matchbox only reads ${dir}/<id>.json` });
    } else {
      files.push(entry);
    }
  }
  return files;
}

function fieldErrors(object: unknown): string | undefined {
  const result = validateObject(object);
  return result.ok ? undefined : result.errors.map((e) => e.message).join('; ');
}

/** Imports a Matchbox data directory into manifests in `namespace`. */
export function importDataDir(dataPath: string, opts: { namespace: string }): ImportResult {
  const { namespace } = opts;
  const errors: ImportNote[] = [];
  const warnings: ImportNote[] = [];
  if (!statSync(dataPath, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(
      `${dataPath} is not a directory (expected a Matchbox -data-path with profiles/ and groups/)`,
    );
  }

  const secrets = new Map<string, SecretManifest>();
  const usedGeneric = new Set<string>();
  const profiles = new Map<string, MatchboxProfile>();
  const profileNames = new Map<string, string>(); // Matchbox profile id (file stem) → kube name
  const sourceIds = { profiles: [] as string[], groups: [] as string[] };

  const claim = (taken: Map<string, unknown>, file: string, stem: string): string | undefined => {
    const name = kubeName(stem);
    if (!name) {
      errors.push({ file, message: `"${stem}" has no characters usable in a Kubernetes name` });
      return undefined;
    }
    if (taken.has(name)) {
      errors.push({ file, message: `becomes the name "${name}", which another file already took` });
      return undefined;
    }
    if (name !== stem)
      warnings.push({ file, message: `imported as "${name}" ("${stem}" is not a Kubernetes name)` });
    return name;
  };

  for (const entry of listJson(dataPath, 'profiles', errors)) {
    const file = `profiles/${entry}`;
    const stem = entry.slice(0, -'.json'.length);
    try {
      const json = readJsonObject(join(dataPath, file));
      const id = stringField(json, 'id');
      if (!id) throw new FileProblem('has no "id"; Matchbox refuses to serve a profile without one');
      for (const unsupported of ['ignition_id', 'cloud_id'] as const) {
        if (stringField(json, unsupported)) {
          throw new FileProblem(
            `uses "${unsupported}", which metalbox profiles do not support (only generic_id)`,
          );
        }
      }
      if (id !== stem)
        warnings.push({ file, message: `"id" is "${id}" but groups find it by its file name "${stem}"` });
      const name = claim(profiles, file, stem);
      if (!name) continue;
      const spec: MatchboxProfile['spec'] = {};
      // A name written by metalbox carries its writer's mark: the import declares the displayName only.
      const displayName = displayNameOf(stringField(json, 'name'));
      if (displayName) spec.displayName = displayName;
      const boot = json.boot;
      if (boot !== undefined && boot !== null) {
        if (typeof boot !== 'object' || Array.isArray(boot))
          throw new FileProblem('"boot" must be an object');
        const b = boot as Record<string, unknown>;
        if ('cmdline' in b)
          throw new FileProblem('"boot.cmdline" was removed in Matchbox v0.6; use "boot.args"');
        const kernel = stringField(b, 'kernel');
        const initrd = stringList(b, 'initrd', 'boot');
        const args = stringList(b, 'args', 'boot');
        if (kernel !== undefined) spec.kernel = kernel;
        if (initrd?.length) spec.initrd = initrd;
        if (args?.length) {
          // iPXE joins args with spaces, so an arg holding spaces is several args to the kernel.
          spec.args = args.flatMap((a) => a.split(' ').filter(Boolean));
          if (spec.args.length !== args.length) {
            warnings.push({
              file,
              message: 'args holding spaces were split into one arg per word (same kernel command line)',
            });
          }
        }
      }
      const genericId = stringField(json, 'generic_id');
      if (genericId) {
        const cleaned = posix.normalize(`/${genericId}`).slice(1);
        let template: Buffer;
        try {
          template = readFileSync(join(dataPath, 'generic', cleaned));
        } catch {
          throw new FileProblem(
            `"generic_id" names generic/${cleaned}, which does not exist (Matchbox answers /generic with 404)`,
          );
        }
        usedGeneric.add(cleaned);
        const secretName = kubeName(`matchbox-generic-${cleaned}`);
        if (!secrets.has(secretName)) {
          const text = template.toString('utf8');
          const isText = Buffer.from(text, 'utf8').equals(template);
          secrets.set(secretName, {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: {
              name: secretName,
              namespace,
              annotations: { [IMPORTED_FROM_ANNOTATION]: `generic/${cleaned}` },
            },
            type: 'Opaque',
            ...(isText
              ? { stringData: { [GENERIC_SECRET_KEY]: text } }
              : { data: { [GENERIC_SECRET_KEY]: template.toString('base64') } }),
          });
        }
        spec.genericConfig = { secretRef: { name: secretName, key: GENERIC_SECRET_KEY } };
      }
      const manifest: MatchboxProfile = {
        apiVersion: 'metalbox.io/v1alpha1',
        kind: 'MatchboxProfile',
        metadata: { name, namespace, annotations: { [IMPORTED_FROM_ANNOTATION]: file } },
        spec,
      };
      const invalid = fieldErrors(manifest);
      if (invalid) throw new FileProblem(`does not make a valid MatchboxProfile: ${invalid}`);
      profiles.set(name, manifest);
      profileNames.set(stem, name);
      sourceIds.profiles.push(id);
    } catch (error) {
      if (!(error instanceof FileProblem)) throw error;
      errors.push({ file, message: error.message });
    }
  }

  const groups = new Map<string, MatchboxGroup>();
  for (const entry of listJson(dataPath, 'groups', errors)) {
    const file = `groups/${entry}`;
    const stem = entry.slice(0, -'.json'.length);
    try {
      const json = readJsonObject(join(dataPath, file));
      const profile = stringField(json, 'profile');
      if (!profile) throw new FileProblem('has no "profile"; Matchbox cannot serve machines it matches');
      const selectorValue = json.selector ?? {};
      if (typeof selectorValue !== 'object' || Array.isArray(selectorValue)) {
        throw new FileProblem('"selector" must be an object of strings');
      }
      const selector: Record<string, string> = {};
      for (const [key, value] of Object.entries(selectorValue as Record<string, unknown>)) {
        if (typeof value !== 'string') throw new FileProblem(`"selector.${key}" must be a string`);
        if (!isMacKey(key)) {
          selector[key] = value;
          continue;
        }
        const mac = normalizeMac(value);
        // Matchbox fails to parse such a group and skips it (a machine falls through to a default group).
        if (!mac)
          throw new FileProblem(
            `"selector.${key}" is "${value}", not a MAC address; Matchbox skips this group`,
          );
        selector[key] = mac;
      }
      const metadata = json.metadata ?? undefined;
      if (
        metadata !== undefined &&
        (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
      ) {
        throw new FileProblem('"metadata" must be a JSON object');
      }
      const name = claim(groups, file, stem);
      if (!name) continue;
      const profileName = profileNames.get(profile);
      if (!profileName) {
        warnings.push({
          file,
          message: `refers to profile "${profile}", which was not imported (no valid profiles/${profile}.json)`,
        });
      }
      const spec: MatchboxGroup['spec'] = { profileRef: { name: profileName ?? kubeName(profile) } };
      // A name written by metalbox carries its writer's mark: the import declares the displayName only.
      const displayName = displayNameOf(stringField(json, 'name'));
      if (displayName) spec.displayName = displayName;
      if (Object.keys(selector).length) spec.selector = selector;
      if (metadata && Object.keys(metadata).length) spec.metadata = metadata as Record<string, unknown>;
      const manifest: MatchboxGroup = {
        apiVersion: 'metalbox.io/v1alpha1',
        kind: 'MatchboxGroup',
        metadata: { name, namespace, annotations: { [IMPORTED_FROM_ANNOTATION]: file } },
        spec,
      };
      const invalid = fieldErrors(manifest);
      if (invalid) throw new FileProblem(`does not make a valid MatchboxGroup: ${invalid}`);
      groups.set(name, manifest);
      sourceIds.groups.push(stringField(json, 'id') ?? stem);
    } catch (error) {
      if (!(error instanceof FileProblem)) throw error;
      errors.push({ file, message: error.message });
    }
  }

  let genericFiles: string[] = [];
  try {
    genericFiles = readdirSync(join(dataPath, 'generic'), { recursive: true, encoding: 'utf8' })
      .filter((f) => statSync(join(dataPath, 'generic', f)).isFile())
      .sort();
  } catch {
    // no generic/ directory: nothing to report
  }
  for (const f of genericFiles) {
    if (!usedGeneric.has(f))
      warnings.push({ file: `generic/${f}`, message: 'no profile refers to it; not imported' });
  }

  const byName = <T extends { metadata: { name?: string } }>(m: Map<string, T>) =>
    [...m.values()].sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  return {
    manifests: [...byName(secrets), ...byName(profiles), ...byName(groups)],
    errors,
    warnings,
    sourceIds,
  };
}

/** A YAML stream (documents separated by ---), as kubectl apply -f reads it. */
export function toYamlStream(manifests: readonly object[], header?: string): string {
  const docs = manifests.map((m) => stringify(m, { lineWidth: 0 }));
  const head = header
    ? `${header
        .split('\n')
        .map((l) => `# ${l}`.trimEnd())
        .join('\n')}\n`
    : '';
  return head + docs.join('---\n');
}
