// Validation of metalbox.io objects for stores that have no apiserver in front of them (etcd,
// file): the same zod schemas the CRDs are generated from, with issues reported the way the
// apiserver reports them: a field path such as `spec.bmc.address` or
// `spec.network.addresses[0]`, a reason, and a short detail.
//
// Values are echoed in messages only when short and scalar (enum and pattern mismatches), so a
// field holding configuration text never ends up in an error, a log or an Event.
import type { z } from 'zod';
import type { RuleReason } from './common.ts';
import { type AnyKindDefinition, kindFor, type MetalboxObject } from './index.ts';

export type FieldErrorReason =
  | RuleReason
  | 'FieldValueNotSupported'
  | 'FieldValueTypeInvalid'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'FieldValueUnknown';

export interface FieldError {
  /** Kubernetes field path: `spec.bmc.address`, `spec.network.addresses[0]`, `metadata.name`. */
  path: string;
  reason: FieldErrorReason;
  /** What is wrong, without the path: `Required value`, `Unsupported value: "bios": ...`. */
  detail: string;
  /** `<path>: <detail>`, as the apiserver prints a cause. */
  message: string;
}

export type ValidationResult =
  | { ok: true; kind: AnyKindDefinition; object: MetalboxObject }
  | { ok: false; kind: AnyKindDefinition | undefined; errors: FieldError[] };

/** A rejected object, as a store throws it; the counterpart of the apiserver's 422 Invalid. */
export class InvalidObjectError extends Error {
  readonly kind: string;
  readonly objectName: string;
  readonly errors: readonly FieldError[];
  constructor(kind: string, objectName: string, errors: readonly FieldError[]) {
    super(`${kind} ${JSON.stringify(objectName)} is invalid: ${errors.map((e) => e.message).join('; ')}`);
    this.name = 'InvalidObjectError';
    this.kind = kind;
    this.objectName = objectName;
    this.errors = errors;
  }
}

/**
 * Validates any metalbox.io object (apiVersion and kind select the schema). On success returns
 * the parsed object with defaults applied, as the apiserver would store it.
 */
export function validateObject(obj: unknown): ValidationResult {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return {
      ok: false,
      kind: undefined,
      errors: [fieldError('', 'FieldValueTypeInvalid', 'must be an object')],
    };
  }
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  const def = kindFor(apiVersion, kind);
  if (!def) {
    const path = apiVersion === 'metalbox.io/v1alpha1' ? 'kind' : 'apiVersion';
    const detail = `no metalbox.io kind ${JSON.stringify(String(kind))} in version ${JSON.stringify(String(apiVersion))}`;
    return { ok: false, kind: undefined, errors: [fieldError(path, 'FieldValueNotSupported', detail)] };
  }
  const result = def.schema.safeParse(obj, { reportInput: true });
  if (result.success) return { ok: true, kind: def, object: result.data as MetalboxObject };
  return { ok: false, kind: def, errors: toFieldErrors(result.error.issues) };
}

/** validateObject, throwing InvalidObjectError instead of returning errors. */
export function assertValidObject(obj: unknown): MetalboxObject {
  const result = validateObject(obj);
  if (result.ok) return result.object;
  const meta = (obj as { metadata?: { name?: unknown } } | null)?.metadata;
  const name = typeof meta?.name === 'string' ? meta.name : '';
  throw new InvalidObjectError(result.kind?.kind ?? 'object', name, result.errors);
}

/** Kubernetes field path of a zod issue path: ['spec', 'routes', 0, 'network'] → spec.routes[0].network. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += out === '' ? s : `.${s}`;
      else out += `[${s}]`;
    }
  }
  return out;
}

export function toFieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  const errors: FieldError[] = [];
  // A value of the wrong type is one error; zod may add length checks that ran on it anyway.
  const wrongType = new Set(issues.filter((i) => i.code === 'invalid_type').map((i) => fieldPath(i.path)));
  for (const issue of issues) {
    const path = fieldPath(issue.path);
    if (issue.code !== 'invalid_type' && wrongType.has(path)) continue;
    switch (issue.code) {
      case 'invalid_type':
        if (issue.input === undefined) errors.push(fieldError(path, 'FieldValueRequired', 'Required value'));
        else {
          errors.push(
            fieldError(
              path,
              'FieldValueTypeInvalid',
              `Invalid value: ${summary(issue.input)}: must be of type ${TYPE_NAMES[issue.expected] ?? issue.expected}`,
            ),
          );
        }
        break;
      case 'invalid_value':
        errors.push(
          fieldError(
            path,
            'FieldValueNotSupported',
            `Unsupported value: ${summary(issue.input)}: supported values: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`,
          ),
        );
        break;
      case 'invalid_format':
        errors.push(
          fieldError(path, 'FieldValueInvalid', `Invalid value: ${summary(issue.input)}: ${issue.message}`),
        );
        break;
      case 'too_big':
        errors.push(tooBig(path, issue));
        break;
      case 'too_small':
        errors.push(tooSmall(path, issue));
        break;
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          const p = fieldPath([...issue.path, key]);
          errors.push(fieldError(p, 'FieldValueUnknown', `unknown field ${JSON.stringify(p)}`));
        }
        break;
      case 'custom': {
        const reason = ((issue.params as { reason?: RuleReason } | undefined)?.reason ??
          'FieldValueInvalid') as RuleReason;
        errors.push(fieldError(path, reason, `${REASON_PREFIX[reason]}: ${issue.message}`));
        break;
      }
      default:
        errors.push(fieldError(path, 'FieldValueInvalid', `Invalid value: ${issue.message}`));
    }
  }
  return errors;
}

// zod's names for expected types, in OpenAPI's words.
const TYPE_NAMES: Record<string, string> = { int: 'integer', record: 'object', map: 'object' };

const REASON_PREFIX: Record<RuleReason, string> = {
  FieldValueInvalid: 'Invalid value',
  FieldValueRequired: 'Required value',
  FieldValueForbidden: 'Forbidden',
  FieldValueDuplicate: 'Duplicate value',
};

function tooBig(path: string, issue: z.core.$ZodIssueTooBig): FieldError {
  const max = Number(issue.maximum);
  switch (issue.origin) {
    case 'string':
      return fieldError(path, 'FieldValueTooLong', `Too long: may not be more than ${max} bytes`);
    case 'array':
    case 'set':
      return fieldError(path, 'FieldValueTooMany', `Too many: must have at most ${max} items`);
    default:
      return fieldError(
        path,
        'FieldValueInvalid',
        `Invalid value: ${summary(issue.input)}: must be less than ${issue.inclusive ? 'or equal to ' : ''}${max}`,
      );
  }
}

function tooSmall(path: string, issue: z.core.$ZodIssueTooSmall): FieldError {
  const min = Number(issue.minimum);
  switch (issue.origin) {
    case 'string':
      return fieldError(path, 'FieldValueInvalid', `Invalid value: must be at least ${min} characters long`);
    case 'array':
    case 'set':
      return fieldError(path, 'FieldValueInvalid', `Invalid value: must have at least ${min} items`);
    default:
      return fieldError(
        path,
        'FieldValueInvalid',
        `Invalid value: ${summary(issue.input)}: must be greater than ${issue.inclusive ? 'or equal to ' : ''}${min}`,
      );
  }
}

function fieldError(path: string, reason: FieldErrorReason, detail: string): FieldError {
  return { path, reason, detail, message: path === '' ? detail : `${path}: ${detail}` };
}

/** A short rendering of an offending value: scalars up to 64 characters, otherwise its type. */
function summary(value: unknown): string {
  if (typeof value === 'string') return value.length <= 64 ? JSON.stringify(value) : '"string"';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return '"array"';
  return JSON.stringify(typeof value);
}
