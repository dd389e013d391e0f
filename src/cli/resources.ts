// The kinds the operator CLI (apply/get/describe/delete/watch) knows: the metalbox.io kinds from
// the CRD registry, with their names, short names and printer columns, and the few core kinds a
// standalone installation keeps (Secret, Event, Namespace) with kubectl's columns for them.
import type { PrinterColumn } from '../crds/common.ts';
import { type AnyKindDefinition, KINDS } from '../crds/index.ts';
import { EventKind } from '../runtime/events.ts';
import { apiVersionOf, type Resource, type ResourceKind } from '../runtime/resource.ts';
import { SecretKind } from '../stores/secrets.ts';

export interface Column {
  name: string;
  type: PrinterColumn['type'];
  /** Shown only with -o wide. */
  priority: number;
  value(obj: Resource): unknown;
}

export interface CliKind {
  kind: ResourceKind;
  /** Lower-case names a command line may use: plural, singular, short names. */
  names: string[];
  /** `baremetalhost.metalbox.io`, `secret`: how kubectl names one object in messages. */
  singularQualified: string;
  /** `baremetalhosts.metalbox.io`, `secrets`. */
  pluralQualified: string;
  columns: Column[];
  /** The CRD registry entry of a metalbox.io kind (schema, validation). */
  definition?: AnyKindDefinition;
}

export const NamespaceKind: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
};

const age = (path: (o: Resource) => unknown, name = 'Age'): Column => ({
  name,
  type: 'date',
  priority: 0,
  value: path,
});

function fromDefinition(d: AnyKindDefinition): CliKind {
  return {
    kind: { group: d.group, version: d.version, kind: d.kind, plural: d.plural, namespaced: true },
    names: [d.plural, d.singular, ...d.shortNames],
    singularQualified: `${d.singular}.${d.group}`,
    pluralQualified: `${d.plural}.${d.group}`,
    columns: d.printerColumns.map((c) => ({
      name: c.name,
      type: c.type,
      priority: c.priority ?? 0,
      value: (obj: Resource) => jsonPath(obj, c.jsonPath),
    })),
    definition: d,
  };
}

export const CLI_KINDS: readonly CliKind[] = [
  ...KINDS.map(fromDefinition),
  {
    kind: SecretKind,
    names: ['secrets', 'secret'],
    singularQualified: 'secret',
    pluralQualified: 'secrets',
    columns: [
      { name: 'Type', type: 'string', priority: 0, value: (o) => (o as { type?: string }).type ?? 'Opaque' },
      {
        name: 'Data',
        type: 'integer',
        priority: 0,
        value: (o) => Object.keys((o as { data?: object }).data ?? {}).length,
      },
      age((o) => o.metadata.creationTimestamp),
    ],
  },
  {
    kind: EventKind,
    names: ['events', 'event', 'ev'],
    singularQualified: 'event',
    pluralQualified: 'events',
    columns: [
      age((o) => (o as { lastTimestamp?: string }).lastTimestamp, 'Last Seen'),
      { name: 'Type', type: 'string', priority: 0, value: (o) => (o as { type?: string }).type },
      { name: 'Reason', type: 'string', priority: 0, value: (o) => (o as { reason?: string }).reason },
      {
        name: 'Object',
        type: 'string',
        priority: 0,
        value: (o) => {
          const io = (o as { involvedObject?: { kind?: string; name?: string } }).involvedObject;
          return io ? `${(io.kind ?? '').toLowerCase()}/${io.name ?? ''}` : undefined;
        },
      },
      { name: 'Message', type: 'string', priority: 0, value: (o) => (o as { message?: string }).message },
    ],
  },
  {
    kind: NamespaceKind,
    names: ['namespaces', 'namespace', 'ns'],
    singularQualified: 'namespace',
    pluralQualified: 'namespaces',
    columns: [
      { name: 'Status', type: 'string', priority: 0, value: () => 'Active' },
      age((o) => o.metadata.creationTimestamp),
    ],
  },
];

/** A kind by any of its names (`bmh`, `baremetalhost`, `baremetalhosts`, `baremetalhosts.metalbox.io`). */
export function resolveKind(name: string): CliKind | undefined {
  const n = name.toLowerCase();
  return CLI_KINDS.find(
    (k) =>
      k.names.includes(n) ||
      n === k.kind.kind.toLowerCase() ||
      n === k.pluralQualified ||
      n === k.singularQualified ||
      (k.kind.group !== '' && k.names.some((x) => n === `${x}.${k.kind.group}`)),
  );
}

/** The kind of a manifest by its apiVersion and kind. */
export function kindOfObject(apiVersion: unknown, kind: unknown): CliKind | undefined {
  return CLI_KINDS.find((k) => apiVersionOf(k.kind) === apiVersion && k.kind.kind === kind);
}

export function knownKindNames(): string {
  return CLI_KINDS.map((k) => k.names.join('|')).join(', ');
}

/**
 * The subset of JSONPath that printer columns use: `.a.b`, `[0]`, `['key']` and
 * `[?(@.field=="value")]`. Returns the first match (several are joined with ","), else undefined.
 */
export function jsonPath(obj: unknown, path: string): unknown {
  let current: unknown[] = [obj];
  const tokens = path.match(
    /\.[A-Za-z0-9_-]+|\[\?\(@\.[A-Za-z0-9_.-]+\s*==\s*(?:"[^"]*"|'[^']*')\)\]|\[\d+\]|\['[^']*'\]/g,
  );
  if (!tokens || tokens.join('') !== path) return undefined;
  for (const token of tokens) {
    const next: unknown[] = [];
    for (const value of current) {
      if (value === null || typeof value !== 'object') continue;
      if (token.startsWith('.')) next.push((value as Record<string, unknown>)[token.slice(1)]);
      else if (token.startsWith("['"))
        next.push((value as Record<string, unknown>)[token.slice(2, -2).replaceAll('\\.', '.')]);
      else if (token.startsWith('[?')) {
        const m = /^\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*(?:"([^"]*)"|'([^']*)')\)\]$/.exec(token)!;
        const field = m[1]!.split('.');
        const want = m[2] ?? m[3];
        if (!Array.isArray(value)) continue;
        for (const item of value) {
          let v: unknown = item;
          for (const f of field)
            v = v && typeof v === 'object' ? (v as Record<string, unknown>)[f] : undefined;
          if (String(v) === want) next.push(item);
        }
      } else if (Array.isArray(value)) next.push(value[Number(token.slice(1, -1))]);
    }
    current = next.filter((v) => v !== undefined);
  }
  if (current.length === 0) return undefined;
  return current.length === 1
    ? current[0]
    : current.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(',');
}
