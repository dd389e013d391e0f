// The flags of `metalbox controller`, validated with zod into one typed value. Every problem is
// reported with the flag it belongs to, so a bad Deployment argument is found from the pod log alone.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  parseStoreFlag,
  STORE_FLAGS_HELP,
  StoreFlagError,
  type StoreFlagValues,
  type StoreSpec,
  storeFlagOptions,
} from './store-flag.ts';

export const CONTROLLER_USAGE = `Usage: metalbox controller [flags]

Runs every metalbox controller against a store, reconciling only while it leads (with --leader-elect).

Flags:
  --store <store>                    where objects live (see Store flags; default: $METALBOX_STORE,
                                     else kube); on file:<dir> a second controller needs --leader-elect
  --kubeconfig <file>                kube store: kubeconfig to use (default: $KUBECONFIG, ~/.kube/config,
                                     then the pod's service account)
  --namespace <ns>                   watch only this namespace (default: all namespaces)
  --leader-elect                     run several replicas; only the holder of a coordination.k8s.io
                                     Lease (kube), the etcd election or the file store's lease reconciles
  --leader-election-namespace <ns>   kube store: namespace of the Lease (default: the pod's namespace,
                                     else metalbox-system)
  --leader-election-id <name>        name of the Lease or election (default metalbox-controller)
  --metrics-addr <host:port>         /healthz, /readyz and /metrics (default 127.0.0.1:8080; :port or
                                     0.0.0.0:port for every interface, as in a pod; port 0: any free port)
  --concurrency <n>                  keys each controller reconciles in parallel (1-256; default: each
                                     controller's own choice, else 1)
  --config <file>                    YAML settings handed to the controller families
  --log-level <level>                trace, debug, info (default), warn, error, fatal or silent
  -h, --help                         show this help

${STORE_FLAGS_HELP}
Exit codes: 0 stopped by SIGTERM/SIGINT, 1 failed or lost leadership, 2 bad flags.
`;

/** A command-line mistake; the message names the flag. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** The shared --store parser (store-flag.ts), as a zod step so its problem joins the others. */
const storeFlag = z.string().transform((value, ctx): StoreSpec => {
  try {
    return parseStoreFlag(value);
  } catch (error) {
    if (!(error instanceof StoreFlagError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
    return z.NEVER;
  }
});

const namespace = z
  .string()
  .max(63, { error: 'must be at most 63 characters' })
  .regex(DNS_LABEL, { error: 'must be a lowercase RFC 1123 label (a-z, 0-9, -)' });

/** `host:port`, `:port` (all interfaces) or `[ipv6]:port`. */
const listenAddress = z.string().transform((value, ctx) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65_535) {
    ctx.addIssue({
      code: 'custom',
      message: `must be host:port or :port with a port of 0-65535, not "${value}"`,
    });
    return z.NEVER;
  }
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
});

const flagSchema = z
  .object({
    store: storeFlag,
    kubeconfig: z.string().min(1, { error: 'must name a file' }).optional(),
    namespace: z.union([z.literal(''), namespace]).default(''),
    'leader-elect': z.boolean().default(false),
    'leader-election-namespace': namespace.optional(),
    'leader-election-id': z
      .string()
      .max(253, { error: 'must be at most 253 characters' })
      .regex(DNS_SUBDOMAIN, { error: 'must be a lowercase RFC 1123 subdomain' })
      .default('metalbox-controller'),
    // Loopback unless asked: /metrics tells anyone who can reach it the fleet's hosts and states.
    'metrics-addr': listenAddress.default({ host: '127.0.0.1', port: 8080 }),
    concurrency: z
      .string()
      .regex(/^\d+$/, { error: 'must be a whole number' })
      .transform(Number)
      .refine((n) => n >= 1 && n <= 256, { error: 'must be between 1 and 256' })
      .optional(),
    config: z.string().min(1, { error: 'must name a file' }).optional(),
    'log-level': z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  })
  .superRefine((flags, ctx) => {
    if (flags.store.type !== 'kube' && flags.kubeconfig !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['kubeconfig'], message: 'applies only to --store kube' });
    }
    if (
      flags.store.type === 'kube' &&
      flags.store.kubeconfig !== undefined &&
      flags.kubeconfig !== undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['kubeconfig'],
        message: 'and --store kube:<kubeconfig> both name a kubeconfig; give one',
      });
    }
    if (flags.store.type !== 'kube' && flags['leader-election-namespace'] !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['leader-election-namespace'],
        message: 'applies only to --store kube (the Lease lives in a namespace; an etcd election does not)',
      });
    }
  });

type RawFlags = z.output<typeof flagSchema>;

export interface ControllerFlags {
  store: StoreSpec;
  /** Kube store: --kubeconfig (--store kube:<file> puts it in `store` instead). */
  kubeconfig?: string;
  /** '' = all namespaces. */
  namespace: string;
  leaderElect: boolean;
  /** Undefined: the pod's namespace, else metalbox-system (resolved when the controller starts). */
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  metricsAddr: { host: string; port: number };
  /** Undefined: each controller's own worker count. */
  concurrency?: number;
  /** Path of the --config file. */
  config?: string;
  logLevel: (typeof LOG_LEVELS)[number];
}

/**
 * Parses and validates argv; `help` when -h/--help was given. Throws UsageError. The store is
 * --store, else $METALBOX_STORE, else kube; `storeValues` are the store flags for openStore
 * (which also reads their environment fallbacks and checks they fit the store).
 */
export function parseControllerFlags(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { help: true } | { help: false; flags: ControllerFlags; storeValues: StoreFlagValues } {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        ...storeFlagOptions,
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        'leader-elect': { type: 'boolean' },
        'leader-election-namespace': { type: 'string' },
        'leader-election-id': { type: 'string' },
        'metrics-addr': { type: 'string' },
        concurrency: { type: 'string' },
        config: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return { help: true };
  // The store's companion flags are checked where they are used (openStore), not here.
  const storeValues: StoreFlagValues = {};
  const given: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) {
    if (name === 'help') continue;
    if (name in storeFlagOptions) storeValues[name as keyof StoreFlagValues] = value as string;
    else given[name] = value;
  }
  given.store = values.store ?? (env.METALBOX_STORE || 'kube');
  const result = flagSchema.safeParse(given);
  if (!result.success) {
    // The shared store parser's messages name their flag already.
    const problems = result.error.issues.map((issue) =>
      issue.message.startsWith('--') ? issue.message : `--${String(issue.path[0])} ${issue.message}`,
    );
    throw new UsageError(problems.join('; '));
  }
  const f: RawFlags = result.data;
  return {
    help: false,
    storeValues,
    flags: {
      store: f.store,
      ...(f.kubeconfig !== undefined ? { kubeconfig: f.kubeconfig } : {}),
      namespace: f.namespace,
      leaderElect: f['leader-elect'],
      ...(f['leader-election-namespace'] !== undefined
        ? { leaderElectionNamespace: f['leader-election-namespace'] }
        : {}),
      leaderElectionId: f['leader-election-id'],
      metricsAddr: f['metrics-addr'],
      ...(f.concurrency !== undefined ? { concurrency: f.concurrency } : {}),
      ...(f.config !== undefined ? { config: f.config } : {}),
      logLevel: f['log-level'],
    },
  };
}

/** Reads the --config file: a YAML mapping (an empty file is an empty mapping). Throws UsageError. */
export function loadControllerConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(`--config: cannot read ${path}: ${code}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    // yaml's messages quote positions, not values, so they are safe to show.
    throw new UsageError(`--config: ${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`--config: ${path} must hold a YAML mapping of settings at the top level`);
  }
  return parsed as Record<string, unknown>;
}
