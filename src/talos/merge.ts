// Talos strategic merge (talos.md §2), as Talos applies it to config documents:
// documents match by apiVersion/kind/name (the v1alpha1 document by having no kind), matched ones
// are deep-merged, others appended; `$patch: delete` removes a document, a list element or a field.
// Values: maps merge per key, scalars overwrite unless the patch value is "" or 0 (booleans always
// overwrite), lists append except the few Talos merges by key or replaces.
import { isDeepStrictEqual } from 'node:util';
import { TalosConfigError } from './errors.ts';
import {
  type ConfigDocument,
  documentId,
  isMachineDocument,
  isMap,
  parseStream,
  type YamlMap,
} from './yaml-stream.ts';

const PATCH = '$patch';
const DELETE = Symbol('delete');

type ListRule = 'replace' | ((a: unknown, b: unknown) => boolean);

const byKey =
  (key: string) =>
  (a: unknown, b: unknown): boolean =>
    isMap(a) && isMap(b) && a[key] !== undefined && a[key] === b[key];

/** Lists Talos does not simply append (`merge:"replace"` tags and custom Merge methods). */
const LIST_RULES: Record<string, ListRule> = {
  'v1alpha1.machine.network.interfaces': (a, b) =>
    isMap(a) &&
    isMap(b) &&
    ((a.interface !== undefined && a.interface === b.interface) ||
      (a.deviceSelector !== undefined && isDeepStrictEqual(a.deviceSelector, b.deviceSelector))),
  'v1alpha1.machine.network.interfaces.vlans': byKey('vlanId'),
  'v1alpha1.cluster.apiServer.admissionControl': byKey('name'),
  'v1alpha1.cluster.network.podSubnets': 'replace',
  'v1alpha1.cluster.network.serviceSubnets': 'replace',
  'ExtensionServiceConfig.configFiles': byKey('mountPath'),
  'NetworkRuleConfig.ingress': 'replace',
  'NetworkRuleConfig.portSelector.ports': 'replace',
};
/** Maps replaced as a whole. */
const REPLACED_MAPS = new Set(['v1alpha1.cluster.apiServer.auditPolicy']);

const isDelete = (v: unknown): boolean => isMap(v) && v[PATCH] === 'delete';

/** The selector of a `$patch: delete` list element: its first other key/value. */
function deleteSelector(element: YamlMap): [string, unknown] | undefined {
  return Object.entries(element).find(([k]) => k !== PATCH);
}

/** A patch value with its directives removed (for values that have nothing to merge into). */
function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => !isDelete(v)).map(clean);
  if (!isMap(value)) return value;
  const out: YamlMap = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === PATCH || isDelete(v)) continue;
    out[k] = clean(v);
  }
  return out;
}

function mergeList(left: unknown[], right: unknown[], path: string): unknown[] {
  const rule = LIST_RULES[path];
  if (rule === 'replace') return clean(right) as unknown[];
  const out = [...left];
  for (const element of right) {
    if (isMap(element) && isDelete(element)) {
      const selector = deleteSelector(element);
      if (!selector) continue;
      const [k, v] = selector;
      const index = out.findIndex((e) => isMap(e) && isDeepStrictEqual(e[k], v));
      if (index >= 0) out.splice(index, 1);
      continue;
    }
    const index = rule ? out.findIndex((e) => rule(e, element)) : -1;
    if (index >= 0) out[index] = mergeValue(out[index], element, path);
    else out.push(clean(element));
  }
  return out;
}

function mergeValue(left: unknown, right: unknown, path: string): unknown {
  if (right === undefined || right === null) return left;
  if (isDelete(right)) return DELETE;
  if (Array.isArray(right)) {
    if (right.length === 0) return left;
    return Array.isArray(left) ? mergeList(left, right, path) : clean(right);
  }
  if (isMap(right)) {
    if (!isMap(left) || REPLACED_MAPS.has(path)) return clean(right);
    const out: YamlMap = { ...left };
    for (const [k, v] of Object.entries(right)) {
      if (k === PATCH) continue;
      const merged = mergeValue(out[k], v, `${path}.${k}`);
      if (merged === DELETE) delete out[k];
      else if (merged !== undefined) out[k] = merged;
    }
    return out;
  }
  // Go's merge skips zero values, except booleans (so `false` can be set).
  if (left !== undefined && typeof right !== 'boolean' && (right === '' || right === 0)) return left;
  return right;
}

/** The root of merge-rule paths: `v1alpha1` or the document's kind. */
const rootOf = (doc: YamlMap): string => (isMachineDocument(doc) ? 'v1alpha1' : String(doc.kind));

/** Merges one document into another of the same identity. */
export function mergeDocument(left: YamlMap, right: YamlMap): YamlMap {
  return mergeValue(left, right, rootOf(left)) as YamlMap;
}

/** Rejects a stream that holds the same document twice (Talos does). */
export function checkDuplicates(docs: readonly ConfigDocument[], field: string): void {
  const seen = new Map<string, number>();
  for (const [i, doc] of docs.entries()) {
    const id = documentId(doc.value);
    const first = seen.get(id);
    if (first !== undefined) {
      throw new TalosConfigError(
        field,
        `duplicate document: document ${i + 1} (${id}) repeats document ${first + 1}; a config or patch may hold each document once`,
      );
    }
    seen.set(id, i);
  }
}

/**
 * Parses a strategic merge patch. RFC 6902 (JSON patch) lists are refused: Talos refuses them for
 * every multi-document config, and every config from v1.12 on is one.
 */
export function parsePatch(text: string, field: string): ConfigDocument[] {
  const values = parseStream(text, field);
  const docs = values.map((value, i): ConfigDocument => {
    if (Array.isArray(value)) {
      throw new TalosConfigError(
        field,
        'is an RFC 6902 JSON patch (a list of operations); only strategic merge patches (partial config documents) are supported',
      );
    }
    if (!isMap(value)) throw new TalosConfigError(field, `document ${i + 1} is not a mapping`);
    if (!isMachineDocument(value) && typeof value.apiVersion !== 'string') {
      throw new TalosConfigError(field, `document ${i + 1} (${String(value.kind)}) has no apiVersion`);
    }
    return { value, origin: field };
  });
  checkDuplicates(docs, field);
  return docs;
}

/** Applies a parsed patch to a config; the result is a new list (inputs are not changed). */
export function applyPatch(
  config: readonly ConfigDocument[],
  patch: readonly ConfigDocument[],
): ConfigDocument[] {
  const out = [...config];
  for (const p of patch) {
    const id = documentId(p.value);
    const index = out.findIndex((d) => documentId(d.value) === id);
    if (isDelete(p.value)) {
      if (isMachineDocument(p.value)) {
        throw new TalosConfigError(p.origin, 'the v1alpha1 document cannot be deleted');
      }
      if (index < 0) {
        throw new TalosConfigError(
          p.origin,
          `$patch: delete names document ${id}, which the config does not have`,
        );
      }
      out.splice(index, 1);
      continue;
    }
    const current = out[index];
    if (current) out[index] = { value: mergeDocument(current.value, p.value), origin: current.origin };
    else out.push({ value: clean(p.value) as YamlMap, origin: p.origin });
  }
  return out;
}
