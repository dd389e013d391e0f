// `metalbox describe <kind> [name...]`: one object in prose, as kubectl describe: metadata, spec,
// status, conditions as a table, and the recent Events about it. Secret values are never shown,
// only their sizes.
import { stringify } from 'yaml';
import { type CoreEvent, EventKind } from '../runtime/events.ts';
import type { Resource } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { humanDuration, renderTable } from './print.ts';
import { type CliKind, knownKindNames } from './resources.ts';
import {
  type CliIo,
  fetchObjects,
  formatError,
  kindArgument,
  NAMESPACE_FLAGS_HELP,
  namespaceFrom,
  parseCommandArgs,
  processIo,
  runCommand,
  UsageError,
  usageWithStoreFlags,
} from './store-command.ts';
import type { StoreFlagValues } from './store-flag.ts';

const USAGE = usageWithStoreFlags(`Usage: metalbox describe <kind> [name...] [-n namespace | -A]

Shows objects with their status, conditions and recent events (all objects of the kind when no
name is given). Kinds: ${knownKindNames()}

${NAMESPACE_FLAGS_HELP}  --events <n>                  recent events to show (default 20; 0: none)
`);

export function run(args: string[]): Promise<number> {
  return main(args, processIo);
}

export function main(args: string[], io: CliIo): Promise<number> {
  return runCommand('describe', USAGE, io, async () => {
    const { values, positionals } = parseCommandArgs(args, { events: { type: 'string' } });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [kindName, ...names] = positionals;
    const kind = kindArgument(kindName);
    const maxEvents = values.events === undefined ? 20 : Number(values.events);
    if (!Number.isInteger(maxEvents) || maxEvents < 0)
      throw new UsageError('--events must be a whole number');
    const all = values['all-namespaces'] === true && kind.kind.namespaced;
    const namespace = kind.kind.namespaced ? namespaceFrom(values, io.env) : undefined;
    return {
      values: values as StoreFlagValues,
      run: async (store) => {
        const { objs, failed } = await fetchObjects(store, io, kind, { names, namespace, all });
        const texts: string[] = [];
        for (const obj of objs) texts.push(await describeObject(store, kind, obj, io.now(), maxEvents));
        io.out(texts.join('\n\n'));
        return failed > 0 ? 1 : 0;
      },
    };
  });
}

export async function describeObject(
  store: ResourceStore,
  kind: CliKind,
  obj: Resource,
  now: Date,
  maxEvents: number,
): Promise<string> {
  const m = obj.metadata;
  const lines: string[] = [];
  const field = (label: string, value: string, indent = '') =>
    lines.push(`${indent}${`${label}:`.padEnd(Math.max(14, label.length + 2))}${value}`);
  field('Name', m.name);
  if (kind.kind.namespaced) field('Namespace', m.namespace ?? '');
  field('Labels', pairs(m.labels));
  field('Annotations', pairs(m.annotations));
  field('API Version', obj.apiVersion);
  field('Kind', obj.kind);
  lines.push('Metadata:');
  const meta: [string, string | undefined][] = [
    ['Creation Timestamp', m.creationTimestamp],
    ['Deletion Timestamp', m.deletionTimestamp],
    ['Finalizers', m.finalizers?.join(', ')],
    ['Generation', m.generation === undefined ? undefined : String(m.generation)],
    [
      'Owner References',
      m.ownerReferences?.map((o) => `${o.kind}/${o.name}${o.controller ? ' (controller)' : ''}`).join(', '),
    ],
    ['Resource Version', m.resourceVersion],
    ['UID', m.uid],
  ];
  const width = Math.max(...meta.filter(([, v]) => v !== undefined).map(([k]) => k.length)) + 3;
  for (const [k, v] of meta) if (v !== undefined) lines.push(`  ${`${k}:`.padEnd(width)}${v}`);

  if (kind.kind.kind === 'Secret') {
    const secret = obj as Resource & { type?: string; data?: Record<string, string> };
    lines.push('', `Type:  ${secret.type ?? 'Opaque'}`, '', 'Data', '====');
    for (const [k, v] of Object.entries(secret.data ?? {}).sort()) {
      lines.push(`${k}:  ${Buffer.from(v, 'base64').length} bytes`);
    }
  } else {
    const { apiVersion: _a, kind: _k, metadata: _m, status, ...content } = obj;
    for (const [key, value] of Object.entries(content)) block(lines, title(key), value);
    const { conditions, ...restStatus } = (status ?? {}) as { conditions?: Condition[] };
    if (status !== undefined) block(lines, 'Status', restStatus);
    if (Array.isArray(conditions) && conditions.length > 0) {
      lines.push('Conditions:');
      const rows = [
        ['Type', 'Status', 'Reason', 'Age', 'Message'],
        ['----', '------', '------', '---', '-------'],
        ...conditions.map((c) => [
          c.type ?? '',
          c.status ?? '',
          c.reason ?? '',
          c.lastTransitionTime ? humanDuration(now.getTime() - Date.parse(c.lastTransitionTime)) : '',
          c.message ?? '',
        ]),
      ];
      lines.push(...indent(renderTable(rows)));
    }
  }
  if (maxEvents > 0 && kind.kind.kind !== 'Event')
    lines.push(...(await eventLines(store, obj, now, maxEvents)));
  return `${lines.join('\n')}\n`;
}

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

async function eventLines(store: ResourceStore, obj: Resource, now: Date, max: number): Promise<string[]> {
  let events: CoreEvent[];
  try {
    const ns = obj.metadata.namespace;
    events = (await store.list<CoreEvent>(EventKind, ns ? { namespace: ns } : {})).items;
  } catch (error) {
    return [`Events:       <cannot list events: ${formatError(error).replace(/^error: /, '')}>`];
  }
  const mine = events
    .filter((e) =>
      e.involvedObject?.uid && obj.metadata.uid
        ? e.involvedObject.uid === obj.metadata.uid
        : e.involvedObject?.kind === obj.kind && e.involvedObject?.name === obj.metadata.name,
    )
    .sort(
      (a, b) =>
        Date.parse(a.lastTimestamp) - Date.parse(b.lastTimestamp) ||
        (a.eventTime ?? '').localeCompare(b.eventTime ?? ''),
    )
    .slice(-max);
  if (mine.length === 0) return ['Events:       <none>'];
  const age = (t: string) => humanDuration(now.getTime() - Date.parse(t));
  const rows = [
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    ['----', '------', '----', '----', '-------'],
    ...mine.map((e) => [
      e.type,
      e.reason,
      e.count > 1
        ? `${age(e.lastTimestamp)} (x${e.count} over ${age(e.firstTimestamp)})`
        : age(e.lastTimestamp),
      e.source?.component ?? e.reportingComponent ?? '',
      e.message,
    ]),
  ];
  return ['Events:', ...indent(renderTable(rows))];
}

function block(lines: string[], label: string, value: unknown): void {
  if (value === undefined) return;
  if (value === null || typeof value !== 'object') {
    lines.push(`${label}:  ${String(value)}`);
    return;
  }
  if (Object.keys(value).length === 0) return;
  lines.push(`${label}:`);
  lines.push(...indent(stringify(value, { lineWidth: 0 })));
}

function indent(text: string): string[] {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => `  ${l}`);
}

function title(key: string): string {
  return key.charAt(0).toUpperCase() + key.slice(1);
}

function pairs(map: Record<string, string> | undefined): string {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return '<none>';
  return entries.map(([k, v]) => `${k}=${v}`).join('\n              ');
}
