// What the operator commands (apply, get, describe, delete, watch) share: the output sink, the
// common flags (-n, -A, -o and the store flags), opening and closing the store, and errors worded
// as kubectl words the apiserver's (`Error from store (NotFound): baremetalhosts.metalbox.io "x" not found`).
import { parseArgs } from 'node:util';
import { StoreError } from '../runtime/errors.ts';
import type { Resource } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { type CliKind, resolveKind } from './resources.ts';
import {
  describeStore,
  type OpenedStore,
  openStore,
  STORE_FLAGS_HELP,
  StoreFlagError,
  type StoreFlagValues,
  storeFlagOptions,
  storeSpecFrom,
} from './store-flag.ts';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  now(): Date;
  /** Ends long-running commands (watch, delete --wait); SIGINT in a terminal. */
  signal?: AbortSignal;
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  now: () => new Date(),
};

/** A mistake on the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const NAMESPACE_FLAGS_HELP = `  -n, --namespace <ns>          namespace (default: $METALBOX_NAMESPACE, else default)
  -A, --all-namespaces          every namespace
`;

type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };

/** parseArgs with the store flags, -n and -A added; UsageError on unknown flags. */
export function parseCommandArgs<O extends Record<string, OptionSpec>>(
  args: string[],
  options: O,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...storeFlagOptions,
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        help: { type: 'boolean', short: 'h' },
        ...options,
      },
    }) as { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The kind a command names in its first argument; a usage error when it is missing or unknown. */
export function kindArgument(kindName: string | undefined): CliKind {
  if (!kindName) throw new UsageError('a kind is required');
  const kind = resolveKind(kindName);
  if (!kind) throw new UsageError(`the server doesn't have a resource type "${kindName}"`);
  return kind;
}

/** Which objects of a kind `get` and `describe` show. */
export interface ObjectScope {
  names: readonly string[];
  /** Undefined for cluster-scoped kinds. */
  namespace: string | undefined;
  all: boolean;
  selector?: Record<string, string> | undefined;
}

/**
 * The named objects (each missing one reported on stderr and counted in `failed`), or with no
 * names every object in scope, sorted by namespace/name, an empty result reported as kubectl does.
 */
export async function fetchObjects(
  store: ResourceStore,
  io: CliIo,
  kind: CliKind,
  scope: ObjectScope,
): Promise<{ objs: Resource[]; failed: number }> {
  const { names, namespace, all, selector } = scope;
  if (names.length > 0) {
    const objs: Resource[] = [];
    let failed = 0;
    for (const name of names) {
      try {
        objs.push(await store.get(kind.kind, { namespace, name }));
      } catch (error) {
        io.err(`${formatError(error, kind, name)}\n`);
        failed++;
      }
    }
    return { objs, failed };
  }
  const everywhere = all || namespace === undefined;
  const list = await store.list(kind.kind, {
    ...(everywhere ? {} : { namespace }),
    ...(selector ? { labelSelector: selector } : {}),
  });
  const key = (o: Resource) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  const objs = list.items.sort((a, b) => key(a).localeCompare(key(b)));
  if (objs.length === 0)
    io.err(everywhere ? 'No resources found\n' : `No resources found in ${namespace} namespace.\n`);
  return { objs, failed: 0 };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function namespaceFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  const ns = (values.namespace as string | undefined) ?? env.METALBOX_NAMESPACE ?? 'default';
  if (!DNS_LABEL.test(ns) || ns.length > 63) {
    throw new UsageError(`--namespace "${ns}" is not a lowercase RFC 1123 label`);
  }
  return ns;
}

/**
 * Runs a command body against the store the flags name, closing it afterwards; turns usage and
 * store errors into messages and exit codes (2 for usage, 1 otherwise).
 */
export async function runCommand(
  name: string,
  usage: string,
  io: CliIo,
  body: () => Promise<
    { values: StoreFlagValues; run: (store: ResourceStore, opened: OpenedStore) => Promise<number> } | number
  >,
): Promise<number> {
  let opened: OpenedStore | undefined;
  try {
    const prepared = await body();
    if (typeof prepared === 'number') return prepared;
    const spec = storeSpecFrom(prepared.values, io.env);
    try {
      opened = await openStore(spec, prepared.values, { env: io.env });
    } catch (error) {
      if (error instanceof StoreFlagError) throw error;
      io.err(`error: cannot open the store ${describeStore(spec)}: ${(error as Error).message}\n`);
      return 1;
    }
    return await prepared.run(opened.store, opened);
  } catch (error) {
    if (error instanceof UsageError || error instanceof StoreFlagError) {
      io.err(`metalbox ${name}: ${error.message}\n\n${usage}`);
      return 2;
    }
    io.err(`${formatError(error)}\n`);
    return 1;
  } finally {
    await opened?.close().catch(() => {});
  }
}

export function usageWithStoreFlags(text: string): string {
  return `${text}\n${STORE_FLAGS_HELP}`;
}

/**
 * kubectl's wording of a failed request: `Error from store (Reason): <message>`, where the message
 * names the object as `<plural>.<group> "<name>"` and lists field errors as the apiserver does.
 */
export function formatError(error: unknown, kind?: CliKind, name?: string): string {
  if (error instanceof StoreError) {
    const what = kind && name !== undefined ? `${kind.pluralQualified} "${name}"` : undefined;
    switch (error.reason) {
      case 'NotFound':
        return `Error from store (NotFound): ${what ?? error.message.replace(/ not found$/, '')} not found`;
      case 'AlreadyExists':
        return `Error from store (AlreadyExists): ${what ?? error.message.replace(/ already exists$/, '')} already exists`;
      case 'Invalid': {
        const fields = (error as unknown as { fields: { path: string; message: string }[] }).fields;
        return `Error from store (Invalid): ${invalidMessage(kind, name, fields)}`;
      }
      default:
        return `Error from store (${error.reason}): ${error.message}`;
    }
  }
  if (error instanceof Error && error.name === 'EtcdUnavailableError') {
    return `Error from store (ServiceUnavailable): ${error.message}`;
  }
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

/** The apiserver's 422 message: `Kind.group "name" is invalid: path: detail` or `[a: x, b: y]`. */
export function invalidMessage(
  kind: CliKind | undefined,
  name: string | undefined,
  fields: { path: string; message: string }[],
): string {
  const subject = kind
    ? `${kind.kind.kind}${kind.kind.group ? `.${kind.kind.group}` : ''} ${JSON.stringify(name ?? '')}`
    : `object ${JSON.stringify(name ?? '')}`;
  const causes = fields.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message));
  return `${subject} is invalid: ${causes.length === 1 ? causes[0] : `[${causes.join(', ')}]`}`;
}

/** `500ms`, `30s`, `2m`, `1h`, or a plain number of seconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new UsageError(`--${flag} "${value}" is not a duration like 30s, 2m or 500ms`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}
