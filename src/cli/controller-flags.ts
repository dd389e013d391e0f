// The flags of `metalbox controller`, validated with zod into one typed value. Every problem is
// reported with the flag it belongs to, so a bad Deployment argument is found from the pod log alone.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const CONTROLLER_USAGE = `Usage: metalbox controller [flags]

Runs every metalbox controller against a store, reconciling only while it leads (with --leader-elect).

Flags:
  --store kube|file:<dir>            where objects live: a kube-apiserver (default kube) or the embedded
                                     file store in <dir> (one process per directory)
  --kubeconfig <file>                kube store: kubeconfig to use (default: $KUBECONFIG, ~/.kube/config,
                                     then the pod's service account)
  --namespace <ns>                   watch only this namespace (default: all namespaces)
  --leader-elect                     kube store: run several replicas; only the holder of a
                                     coordination.k8s.io Lease reconciles
  --leader-election-namespace <ns>   namespace of the Lease (default: the pod's namespace, else
                                     metalbox-system)
  --leader-election-id <name>        name of the Lease (default metalbox-controller)
  --metrics-addr <host:port>         /healthz, /readyz and /metrics (default :8080; port 0: any free port)
  --concurrency <n>                  keys each controller reconciles in parallel (1-256; default: each
                                     controller's own choice, else 1)
  --config <file>                    YAML settings handed to the controller families
  --log-level <level>                trace, debug, info (default), warn, error, fatal or silent
  -h, --help                         show this help

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

export type StoreFlag = { type: 'kube' } | { type: 'file'; dir: string };

const storeFlag = z.string().transform((value, ctx): StoreFlag => {
  if (value === 'kube') return { type: 'kube' };
  if (value.startsWith('file:') && value.length > 'file:'.length) {
    return { type: 'file', dir: resolve(value.slice('file:'.length)) };
  }
  ctx.addIssue({ code: 'custom', message: `must be kube or file:<dir>, not "${value}"` });
  return z.NEVER;
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
    store: storeFlag.default({ type: 'kube' }),
    kubeconfig: z.string().min(1, { error: 'must name a file' }).optional(),
    namespace: z.union([z.literal(''), namespace]).default(''),
    'leader-elect': z.boolean().default(false),
    'leader-election-namespace': namespace.optional(),
    'leader-election-id': z
      .string()
      .max(253, { error: 'must be at most 253 characters' })
      .regex(DNS_SUBDOMAIN, { error: 'must be a lowercase RFC 1123 subdomain' })
      .default('metalbox-controller'),
    'metrics-addr': listenAddress.default({ host: '0.0.0.0', port: 8080 }),
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
    if (flags.store.type !== 'kube' && flags['leader-elect']) {
      ctx.addIssue({
        code: 'custom',
        path: ['leader-elect'],
        message: 'needs --store kube (the file store allows one process per directory)',
      });
    }
    if (flags.store.type !== 'kube' && flags.kubeconfig !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['kubeconfig'], message: 'applies only to --store kube' });
    }
  });

type RawFlags = z.output<typeof flagSchema>;

export interface ControllerFlags {
  store: StoreFlag;
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

/** Parses and validates argv; `help` when -h/--help was given. Throws UsageError. */
export function parseControllerFlags(
  args: string[],
): { help: true } | { help: false; flags: ControllerFlags } {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        store: { type: 'string' },
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
  const { help: _help, ...given } = values;
  const result = flagSchema.safeParse(given);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `--${String(issue.path[0])} ${issue.message}`);
    throw new UsageError(problems.join('; '));
  }
  const f: RawFlags = result.data;
  return {
    help: false,
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
