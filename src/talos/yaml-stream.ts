// Talos config files are YAML streams: at most one v1alpha1 document (no `kind`) plus typed
// documents (`apiVersion` + `kind` + usually `name`). Parse errors say where, never what: the text
// may hold cluster keys, and the yaml package's messages quote the offending source lines.
import { Document, isScalar, parseAllDocuments, Scalar, visit } from 'yaml';
import { TalosConfigError } from './errors.ts';

export type YamlMap = Record<string, unknown>;

/** A document and where it came from (for error messages). */
export interface ConfigDocument {
  value: YamlMap;
  origin: string;
}

export const isMap = (v: unknown): v is YamlMap => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `v1alpha1` for the machine config document, `<Kind>` or `<Kind>/<name>` for typed documents. */
export function documentId(doc: YamlMap): string {
  const kind = doc.kind;
  if (typeof kind !== 'string') return 'v1alpha1';
  return typeof doc.name === 'string' ? `${kind}/${doc.name}` : kind;
}

export const isMachineDocument = (doc: YamlMap): boolean => typeof doc.kind !== 'string';

/** The safe part of a yaml error: its summary and position, without the quoted source. */
function describeYamlError(error: {
  message: string;
  linePos?: [{ line: number; col: number }, ...unknown[]];
}): string {
  const summary = error.message.split(' at line ')[0]?.split('\n')[0] ?? 'invalid YAML';
  const pos = error.linePos?.[0];
  return pos ? `${summary} (line ${pos.line}, column ${pos.col})` : summary;
}

/**
 * The non-empty documents of a YAML stream as plain values. `field` names the source in errors.
 * Returns sequences too (callers decide: an RFC 6902 patch is a sequence).
 */
export function parseStream(text: string, field: string): unknown[] {
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { uniqueKeys: true });
  } catch {
    throw new TalosConfigError(field, 'is not valid YAML');
  }
  if (!Array.isArray(docs)) throw new TalosConfigError(field, 'is not valid YAML');
  const values: unknown[] = [];
  for (const [i, doc] of docs.entries()) {
    const error = doc.errors[0];
    if (error) {
      throw new TalosConfigError(field, `document ${i + 1} is not valid YAML: ${describeYamlError(error)}`);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch {
      throw new TalosConfigError(field, `document ${i + 1} cannot be read (too many aliases?)`);
    }
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

/** Parses a config stream whose documents must all be mappings. */
export function parseDocuments(text: string, field: string): ConfigDocument[] {
  return parseStream(text, field).map((value, i) => {
    if (!isMap(value)) throw new TalosConfigError(field, `document ${i + 1} is not a mapping`);
    if (!isMachineDocument(value) && typeof value.apiVersion !== 'string') {
      throw new TalosConfigError(field, `document ${i + 1} (${String(value.kind)}) has no apiVersion`);
    }
    return { value, origin: field };
  });
}

// MAC-like strings (`00:11:22:33:44:55`) are base-60 integers to YAML 1.1 readers: always quote them.
const MAC_LIKE = /^[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2})+$/;

export function stringifyDocument(value: YamlMap): string {
  const doc = new Document(value);
  visit(doc, {
    Scalar(_key, node: Scalar) {
      if (isScalar(node) && typeof node.value === 'string' && MAC_LIKE.test(node.value)) {
        node.type = Scalar.QUOTE_DOUBLE;
      }
    },
  });
  return doc.toString({ lineWidth: 0, indent: 2 });
}

/** The stream Talos reads: documents separated by `---`. */
export function stringifyStream(values: YamlMap[]): string {
  return values.map(stringifyDocument).join('---\n');
}
