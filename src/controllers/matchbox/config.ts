// The `matchbox:` section of the controller's --config file: which Matchbox servers every
// MatchboxProfile/MatchboxGroup is written to, with their mTLS credentials, and how often each is
// compared with what the resources declare.
//
//   matchbox:
//     endpoints:
//       - name: mgmt-01
//         endpoint: 10.0.20.11:8081          # Matchbox -rpc-address, host:port, no scheme
//         httpURL: http://10.0.20.11:8080    # Matchbox -address, for BootAnswerVerified (optional)
//         tls:
//           secretRef: { namespace: metalbox-system, name: matchbox-client }   # ca.crt, tls.crt, tls.key
//       - name: mgmt-02
//         endpoint: 10.0.20.12:8081
//         tls: { caFile: /etc/metalbox/ca.crt, certFile: /etc/metalbox/client.crt, keyFile: /etc/metalbox/client.key }
//     driftScanIntervalSeconds: 300     # per endpoint: ProfileList + GroupList, compare, repair
//     verifyBootAnswers: true           # GET /ipxe?mac= per group and endpoint after each change
//     workers: 8                        # groups reconciled in parallel
//     owner: prod-mgmt                  # owner identity written into every Matchbox object
//                                       # (default: derived from the store, see owner.ts)
//
// Verification costs Matchbox one read of every group file per request (it caches nothing), so on
// fleets of thousands of groups a profile change means O(groups²) file reads on each server;
// turn it off there (see scripts/bench/matchbox.ts).
import { z } from 'zod';
import { parseEndpoint } from '../../matchbox/client.ts';
import { ownerProblem } from '../../matchbox/owner.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const secretRef = z.strictObject({
  namespace: z.string().max(63).regex(DNS_LABEL, 'must be a namespace name'),
  name: z.string().max(253).regex(DNS_SUBDOMAIN, 'must be a Secret name'),
});

const tls = z.union(
  [
    z.strictObject({ secretRef }),
    z.strictObject({
      caFile: z.string().min(1),
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
    }),
  ],
  {
    error:
      'must be either {secretRef: {namespace, name}} (a Secret with ca.crt, tls.crt, tls.key) or {caFile, certFile, keyFile}',
  },
);

const endpoint = z.strictObject({
  /** Short name used in logs, metrics and Events. */
  name: z.string().max(63).regex(DNS_LABEL, 'must be a DNS label such as mgmt-01'),
  endpoint: z.string().superRefine((value, ctx) => {
    try {
      parseEndpoint(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  }),
  httpURL: z
    .string()
    .regex(/^https?:\/\/[^/\s]+\/?$/, 'must be http(s)://host:port of Matchbox -address, without a path')
    .optional(),
  tls,
  timeoutSeconds: z.number().positive().max(300).default(10),
});

export const matchboxSyncConfig = z
  .strictObject({
    endpoints: z.array(endpoint).min(1).max(16),
    driftScanIntervalSeconds: z.number().min(1).max(86_400).default(300),
    verifyBootAnswers: z.boolean().default(true),
    /** Objects reconciled in parallel per kind. */
    workers: z.int().min(1).max(64).default(8),
    /** Owner identity in every Matchbox object written; instances sharing a Matchbox need distinct ones. */
    owner: z
      .string()
      .superRefine((value, ctx) => {
        const problem = ownerProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
  })
  .superRefine((config, ctx) => {
    const seen = { name: new Map<string, number>(), endpoint: new Map<string, number>() };
    config.endpoints.forEach((e, i) => {
      for (const field of ['name', 'endpoint'] as const) {
        const first = seen[field].get(e[field]);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['endpoints', i, field],
            message: `"${e[field]}" is also endpoints[${first}].${field}; each endpoint is listed once`,
          });
        } else seen[field].set(e[field], i);
      }
    });
  });

export type MatchboxSyncConfig = z.infer<typeof matchboxSyncConfig>;
export type EndpointConfig = MatchboxSyncConfig['endpoints'][number];
export type EndpointTLSConfig = EndpointConfig['tls'];

/** `endpoints[0].tls.caFile` from a zod path. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, p) => (typeof p === 'number' ? `${out}[${p}]` : `${out}.${String(p)}`),
    '',
  );
}

/** The `matchbox` config section is unusable; `fields` name each offending field. */
export class MatchboxSyncConfigError extends Error {
  readonly fields: string[];
  constructor(problems: { field: string; message: string }[]) {
    super(`invalid config: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
    this.name = 'MatchboxSyncConfigError';
    this.fields = problems.map((p) => p.field);
  }
}

/** Parses the `matchbox` section; every problem is reported with its field (`matchbox.endpoints[1].endpoint`). */
export function parseMatchboxSyncConfig(section: unknown): MatchboxSyncConfig {
  const result = matchboxSyncConfig.safeParse(section);
  if (result.success) return result.data;
  throw new MatchboxSyncConfigError(
    result.error.issues.map((i) => ({ field: `matchbox${fieldPath(i.path)}`, message: i.message })),
  );
}
