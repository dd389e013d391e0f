// Building blocks shared by the metalbox.io kinds: names, MACs, IPs, object references,
// metav1.ObjectMeta / metav1.Condition, and cross-field rules that exist once and are enforced
// twice (zod refinement here, CEL `x-kubernetes-validations` in the generated CRD).
//
// Every regular expression here is written in the common subset of JavaScript and Go RE2
// (no lookaround, no backreferences, ASCII classes only), because the same source string becomes
// the CRD's OpenAPI `pattern` and is evaluated by the kube-apiserver.
import { z } from 'zod';

export const GROUP = 'metalbox.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

// ---------------------------------------------------------------------------------------------
// Patterns

const IPV4_SRC =
  '((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const H16 = '[0-9a-fA-F]{1,4}';
// RFC 4291 text forms, including "::" compression and an embedded IPv4 tail; no zone index.
const IPV6_SRC = [
  `(${H16}:){7}${H16}`,
  `(${H16}:){1,7}:`,
  `(${H16}:){1,6}:${H16}`,
  `(${H16}:){1,5}(:${H16}){1,2}`,
  `(${H16}:){1,4}(:${H16}){1,3}`,
  `(${H16}:){1,3}(:${H16}){1,4}`,
  `(${H16}:){1,2}(:${H16}){1,5}`,
  `${H16}:(:${H16}){1,6}`,
  `:((:${H16}){1,7}|:)`,
  `(${H16}:){6}${IPV4_SRC}`,
  `(${H16}:){0,5}:${IPV4_SRC}`,
  `::(${H16}:){0,5}${IPV4_SRC}`,
].join('|');

export const IP_PATTERN = new RegExp(`^(${IPV4_SRC}|${IPV6_SRC})$`);
export const CIDR_PATTERN = new RegExp(
  `^((${IPV4_SRC})/(3[0-2]|[12][0-9]|[0-9])|(${IPV6_SRC})/(12[0-8]|1[01][0-9]|[1-9][0-9]|[0-9]))$`,
);
/** Colon or hyphen form, any case; one separator throughout (as Go's net.ParseMAC reads it). */
export const MAC_PATTERN = /^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}$/;
export const DNS_SUBDOMAIN_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS_LABEL_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Linux link names: at most 15 bytes, no slash, no whitespace. */
export const LINK_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,15}$/;
/** A block device path such as /dev/sda or /dev/disk/by-id/wwn-0x5000c500a0b1c2d3. */
export const DEVICE_PATH_PATTERN = /^\/dev\/[A-Za-z0-9._:/+-]+$/;
/** metav1.Condition type and reason, as the apimachinery markers define them. */
const CONDITION_TYPE_PATTERN =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const CONDITION_REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
/** RFC 3339 date-time as written by metav1.Time (seconds, optional fraction, Z or offset). */
const DATE_TIME_PATTERN =
  /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$/;

// ---------------------------------------------------------------------------------------------
// Scalars

export const macAddress = () =>
  z
    .string()
    .max(17)
    .regex(MAC_PATTERN, 'must be a MAC address such as aa:bb:cc:dd:ee:ff (colon or hyphen form)');

/**
 * The lowercase colon form (aa:bb:cc:dd:ee:ff), which is what Matchbox's gRPC API stores and
 * compares byte for byte. Manifests may use either form and any case: the stored object keeps
 * what the user wrote (no store mutates input), and every consumer compares and sends
 * normalizeMac(value). Returns undefined for a value that is not a MAC.
 */
export function normalizeMac(value: string): string | undefined {
  if (!MAC_PATTERN.test(value)) return undefined;
  return value.toLowerCase().replaceAll('-', ':');
}

export const ipAddress = () =>
  z.string().max(45).regex(IP_PATTERN, 'must be an IPv4 or IPv6 address such as 10.0.20.1');
export const cidr = () =>
  z
    .string()
    .max(49)
    .regex(CIDR_PATTERN, 'must be an address with prefix length (CIDR) such as 10.0.20.10/24');
export const dnsSubdomain = () =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(DNS_SUBDOMAIN_PATTERN, 'must be a lowercase RFC 1123 subdomain (a-z, 0-9, "-" and ".")');
export const dnsLabel = () =>
  z.string().min(1).max(63).regex(DNS_LABEL_PATTERN, 'must be a lowercase RFC 1123 label (a-z, 0-9 and "-")');
export const linkName = () =>
  z
    .string()
    .regex(LINK_NAME_PATTERN, 'must be a link name of 1-15 characters (A-Z, a-z, 0-9, "_", ".", "-")');
export const devicePath = () =>
  z.string().max(256).regex(DEVICE_PATH_PATTERN, 'must be a device path such as /dev/sda');
export const dateTime = () =>
  z
    .string()
    .max(64)
    .regex(DATE_TIME_PATTERN, 'must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z')
    .meta({ format: 'date-time' });
/** A non-negative int64 (generations, counts). */
export const count = () => z.int().min(0);

// ---------------------------------------------------------------------------------------------
// References

/** A reference to an object of a known kind in the same namespace. */
export const localObjectReference = (what: string) =>
  z.strictObject({ name: dnsSubdomain().describe(`Name of the ${what} in the same namespace.`) });
export type LocalObjectReference = z.infer<ReturnType<typeof localObjectReference>>;

/** One key of a Secret in the same namespace. */
export const secretKeyReference = () =>
  z.strictObject({
    name: dnsSubdomain().describe('Name of the Secret in the same namespace.'),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret data key (A-Z, a-z, 0-9, "-", "_", ".")')
      .describe('Key within the Secret.'),
  });
export type SecretKeyReference = z.infer<ReturnType<typeof secretKeyReference>>;

// ---------------------------------------------------------------------------------------------
// metav1.ObjectMeta. The CRD schema of `metadata` may only be `type: object` (the apiserver
// validates metadata itself), so this schema serves zod-side stores; it accepts what the
// apiserver adds (managedFields, uid, ...) and checks what the apiserver would reject.

const ownerReference = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  name: z.string().min(1),
  uid: z.string().min(1),
  controller: z.boolean().optional(),
  blockOwnerDeletion: z.boolean().optional(),
});
export type OwnerReference = z.infer<typeof ownerReference>;

export const objectMeta = z
  .looseObject({
    name: dnsSubdomain().optional(),
    generateName: z.string().max(253).optional(),
    namespace: dnsLabel().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: count().optional(),
    creationTimestamp: dateTime().optional(),
    deletionTimestamp: dateTime().optional(),
    deletionGracePeriodSeconds: count().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    finalizers: z.array(z.string()).optional(),
    ownerReferences: z.array(ownerReference).optional(),
  })
  .superRefine((meta, ctx) => {
    if (meta.name === undefined && meta.generateName === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: 'name or generateName is required',
        params: { reason: 'FieldValueRequired' },
      });
    }
  });
export type ObjectMeta = z.infer<typeof objectMeta>;

// ---------------------------------------------------------------------------------------------
// metav1.Condition, list-map keyed by type as upstream declares it.

export const condition = z.strictObject({
  type: z.string().max(316).regex(CONDITION_TYPE_PATTERN, 'must be a condition type such as Ready'),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: count().optional(),
  lastTransitionTime: dateTime(),
  reason: z.string().min(1).max(1024).regex(CONDITION_REASON_PATTERN, 'must be a CamelCase reason'),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof condition>;

export const conditions = () =>
  z
    .array(condition)
    .max(32)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
    .describe('Latest observations of the object, one per condition type.');

// ---------------------------------------------------------------------------------------------
// Cross-field rules: written once, enforced by zod (superRefine) and by the kube-apiserver (CEL).

/** The `reason` values CEL rules may declare (apiextensions.k8s.io/v1 ValidationRule.reason). */
export type RuleReason =
  | 'FieldValueInvalid'
  | 'FieldValueRequired'
  | 'FieldValueForbidden'
  | 'FieldValueDuplicate';

export interface CrossFieldRule<T> {
  /** CEL, evaluated with `self` bound to the object the rule is attached to. */
  rule: string;
  /** The same text is reported by zod and by the apiserver. */
  message: string;
  /** Relative path the error is reported at, in CEL fieldPath syntax (`.a.b`); property names only. */
  fieldPath?: string;
  reason?: RuleReason;
  /** The zod-side implementation of `rule`; must agree with it on every input. */
  holds: (self: T) => boolean;
}

export interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: RuleReason;
}

/** `.a.b` → ['a', 'b']. Only dotted property names are supported (no map keys, no indexes). */
export function fieldPathSegments(fieldPath: string | undefined): string[] {
  if (fieldPath === undefined) return [];
  if (!/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(fieldPath)) {
    throw new Error(`unsupported CEL fieldPath ${JSON.stringify(fieldPath)}: use .property(.property)*`);
  }
  return fieldPath.slice(1).split('.');
}

export function celValidations<T>(rules: readonly CrossFieldRule<T>[]): CelValidation[] {
  return rules.map(({ rule, message, fieldPath, reason }) => ({
    rule,
    message,
    ...(fieldPath === undefined ? {} : { fieldPath }),
    ...(reason === undefined ? {} : { reason }),
  }));
}

/**
 * Attaches rules to a schema: a zod refinement reporting `message` at `fieldPath`, and the
 * matching `x-kubernetes-validations` entries in the schema's metadata, which the CRD
 * generator copies into the OpenAPI schema of the same node.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly CrossFieldRule<z.output<S>>[]): S {
  for (const r of rules) fieldPathSegments(r.fieldPath);
  return schema
    .superRefine((value, ctx) => {
      for (const r of rules) {
        if (r.holds(value)) continue;
        ctx.addIssue({
          code: 'custom',
          message: r.message,
          path: fieldPathSegments(r.fieldPath),
          params: { reason: r.reason ?? 'FieldValueInvalid' },
        });
      }
    })
    .meta({ 'x-kubernetes-validations': celValidations(rules) }) as S;
}

// ---------------------------------------------------------------------------------------------
// Printer columns (apiextensions.k8s.io/v1 CustomResourceColumnDefinition).

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

/** Ready and its reason (what the object is doing or waiting for), on every kind. */
export const healthColumns: PrinterColumn[] = [
  {
    name: 'Ready',
    type: 'string',
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: 'In the state the spec asks for',
  },
  {
    name: 'Reason',
    type: 'string',
    jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
    description: 'What it is doing, waiting for, or needs a person for',
  },
];

export const ageColumn: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
};

// ---------------------------------------------------------------------------------------------
// Status of an object mirrored into every Matchbox endpoint (MatchboxProfile, MatchboxGroup).

export const matchboxSyncStatus = () =>
  z.strictObject({
    observedGeneration: count().optional(),
    matchboxId: z.string().max(253).optional().describe('Id of the object in Matchbox.'),
    endpoints: z
      .array(
        z.strictObject({
          endpoint: z.string().min(1).max(512).describe('Matchbox gRPC endpoint (host:port).'),
          observedGeneration: count().optional().describe('Generation last written to this endpoint.'),
          synced: z.boolean(),
          lastError: z.string().max(4096).optional(),
          lastSyncTime: dateTime().optional(),
        }),
      )
      .max(16)
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['endpoint'] })
      .optional()
      .describe('One entry per configured Matchbox endpoint.'),
    conditions: conditions().optional(),
  });
export type MatchboxSyncStatus = z.infer<ReturnType<typeof matchboxSyncStatus>>;

/** Condition types the Matchbox sync controllers set. */
export const MATCHBOX_CONDITIONS = {
  /** True when every endpoint holds the current generation. */
  synced: 'Synced',
} as const;
