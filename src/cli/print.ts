// Output of the operator CLI, shaped like kubectl's: tables with the kind's printer columns
// (NAME first, NAMESPACE with -A, priority > 0 only with -o wide), ages like "5m12s", and
// -o yaml / json / name.
import { stringify } from 'yaml';
import type { Resource } from '../runtime/resource.ts';
import type { CliKind, Column } from './resources.ts';

export const OUTPUT_FORMATS = ['table', 'wide', 'yaml', 'json', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function parseOutput(value: string | undefined): OutputFormat | undefined {
  if (value === undefined) return 'table';
  return (OUTPUT_FORMATS as readonly string[]).includes(value) && value !== 'table'
    ? (value as OutputFormat)
    : undefined;
}

export interface TableOptions {
  wide: boolean;
  withNamespace: boolean;
  now: Date;
  /** Extra leading column (watch: EVENT). */
  lead?: { name: string; values: string[] };
}

export function columnsFor(kind: CliKind, wide: boolean): Column[] {
  return kind.columns.filter((c) => wide || c.priority === 0);
}

export function tableRows(kind: CliKind, objs: Resource[], options: TableOptions): string[][] {
  const columns = columnsFor(kind, options.wide);
  return objs.map((obj, i) => [
    ...(options.lead ? [options.lead.values[i] ?? ''] : []),
    ...(options.withNamespace ? [obj.metadata.namespace ?? ''] : []),
    obj.metadata.name,
    ...columns.map((c) => cell(c, c.value(obj), options.now)),
  ]);
}

export function tableHeader(kind: CliKind, options: TableOptions): string[] {
  return [
    ...(options.lead ? [options.lead.name] : []),
    ...(options.withNamespace ? ['NAMESPACE'] : []),
    'NAME',
    ...columnsFor(kind, options.wide).map((c) => c.name.toUpperCase()),
  ];
}

/** kubectl's tabwriter layout: columns padded to the widest cell plus three spaces. */
export function renderTable(rows: string[][], widths?: number[]): string {
  const w = widths ?? columnWidths(rows);
  return rows
    .map((row) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(w[i]! + 3)))
        .join('')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

export function columnWidths(rows: string[][]): number[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return widths;
}

function cell(column: Column, value: unknown, now: Date): string {
  if (value === undefined || value === null || value === '') return '';
  if (column.type === 'date') {
    const t = Date.parse(String(value));
    return Number.isNaN(t) ? String(value) : humanDuration(now.getTime() - t);
  }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** k8s.io/apimachinery duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const d = Math.floor(hours / 24) % 365;
    return d === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${d}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

/** One object, or a kubectl-style List of several. */
export function renderObjects(objs: Resource[], format: 'yaml' | 'json', single: boolean): string {
  const value = single && objs.length === 1 ? objs[0] : { apiVersion: 'v1', kind: 'List', items: objs };
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value, { lineWidth: 0 });
}

export function objectName(kind: CliKind, obj: Resource): string {
  return `${kind.singularQualified}/${obj.metadata.name}`;
}
