// zod schema → structural OpenAPI v3 schema as apiextensions.k8s.io/v1 accepts it
// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema).
//
// z.toJSONSchema (target openapi-3.0, input side, everything inlined) does most of the work; this
// pass removes what a structural schema forbids, maps what it spells differently, and throws —
// naming the schema path — on anything it cannot express (unions, $ref, untyped nodes), so a new
// field that would produce a non-structural CRD fails the generator instead of the apiserver.
import { z } from 'zod';

/** A node of apiextensions.k8s.io/v1 JSONSchemaProps (the subset the generator emits). */
export type JSONSchemaProps = { [key: string]: unknown };

// Formats the apiserver knows (k8s.io/apiextensions-apiserver supported formats). zod emits
// formats of its own (cidrv4, email, ...): those are dropped, the pattern carries the check.
const KNOWN_FORMATS = new Set([
  'date-time',
  'date',
  'int32',
  'int64',
  'float',
  'double',
  'byte',
  'uuid',
  'uri',
]);

// Output key order, so the YAML reads the same way for every node and never depends on the
// order in which zod happened to write keys.
const KEY_ORDER = [
  'description',
  'type',
  'format',
  'nullable',
  'enum',
  'default',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'x-kubernetes-validations',
];
const PASS_THROUGH = new Set(
  KEY_ORDER.filter((k) => !['properties', 'additionalProperties', 'items'].includes(k)),
);
// Keys zod may write that carry nothing a CRD can use.
const DROPPED = new Set(['$schema', 'id', '$id', 'title', 'examples', 'propertyNames']);

export class NonStructuralSchemaError extends Error {
  readonly schemaPath: string;
  constructor(schemaPath: string, problem: string) {
    super(`${schemaPath || '<root>'}: ${problem}`);
    this.name = 'NonStructuralSchemaError';
    this.schemaPath = schemaPath;
  }
}

/** The structural OpenAPI v3 schema of a zod schema. */
export function structuralSchema(schema: z.ZodType): JSONSchemaProps {
  return convert(jsonSchema(schema), '');
}

/**
 * The openAPIV3Schema of a CRD version: the object schema with apiVersion/kind as plain strings
 * and metadata as `type: object` (the apiserver validates those itself and rejects anything else
 * under metadata).
 */
export function crdObjectSchema(schema: z.ZodType): JSONSchemaProps {
  const json = jsonSchema(schema);
  const props = json['properties'] as Record<string, JSONSchemaProps> | undefined;
  if (json['type'] !== 'object' || !props?.['metadata'] || !props['spec']) {
    throw new NonStructuralSchemaError('', 'an object schema needs metadata and spec properties');
  }
  const required = ((json['required'] as string[] | undefined) ?? []).filter((k) => k === 'spec');
  const root = convert(
    {
      ...json,
      properties: {
        ...props,
        apiVersion: { type: 'string', description: 'APIVersion of this object (metalbox.io/v1alpha1).' },
        kind: { type: 'string', description: 'Kind of this object.' },
        metadata: { type: 'object' },
      },
      required,
    },
    '',
  );
  return root;
}

function jsonSchema(schema: z.ZodType): JSONSchemaProps {
  return z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    reused: 'inline',
    cycles: 'throw',
    unrepresentable: 'throw',
  }) as JSONSchemaProps;
}

function convert(node: JSONSchemaProps, path: string): JSONSchemaProps {
  const out: JSONSchemaProps = {};
  const preserveUnknown = node['x-kubernetes-preserve-unknown-fields'] === true;
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED.has(key)) continue;
    switch (key) {
      case 'properties': {
        const props: Record<string, JSONSchemaProps> = {};
        for (const [name, child] of Object.entries(value as Record<string, JSONSchemaProps>)) {
          props[name] = convert(child, `${path}.${name}`);
        }
        out['properties'] = props;
        break;
      }
      case 'items':
        if (Array.isArray(value)) throw new NonStructuralSchemaError(path, 'tuple items are not structural');
        out['items'] = convert(value as JSONSchemaProps, `${path}[*]`);
        break;
      case 'additionalProperties':
        // false is the default of a structural schema (unknown fields are pruned) and may not be
        // written; {} under preserve-unknown-fields says nothing more.
        if (value === false) break;
        if (preserveUnknown && isEmpty(value)) break;
        if (value === true || isEmpty(value)) {
          throw new NonStructuralSchemaError(
            path,
            'a free-form map needs x-kubernetes-preserve-unknown-fields',
          );
        }
        out['additionalProperties'] = convert(value as JSONSchemaProps, `${path}[*]`);
        break;
      case 'required':
        if ((value as string[]).length > 0) out['required'] = value;
        break;
      case 'const':
        out['enum'] = [value];
        break;
      case 'format':
        if (KNOWN_FORMATS.has(value as string)) out['format'] = value;
        break;
      case 'minimum':
      case 'maximum':
        // z.int() bounds every integer to the safe range; that is JavaScript's limit, not the field's.
        if (Math.abs(value as number) !== Number.MAX_SAFE_INTEGER) out[key] = value;
        break;
      case 'uniqueItems':
        if (value === true)
          throw new NonStructuralSchemaError(path, 'uniqueItems: true is forbidden; use a set list-type');
        break;
      case 'anyOf':
      case 'oneOf':
      case 'allOf':
      case 'not':
        throw new NonStructuralSchemaError(
          path,
          `${key} (a zod union, intersection or negation) is not structural`,
        );
      case '$ref':
      case '$defs':
      case 'definitions':
        throw new NonStructuralSchemaError(path, `${key}: the schema must be inlined`);
      default:
        if (!PASS_THROUGH.has(key)) throw new NonStructuralSchemaError(path, `unsupported keyword ${key}`);
        out[key] = value;
    }
  }
  if (out['type'] === undefined && !preserveUnknown) {
    throw new NonStructuralSchemaError(
      path,
      'every node needs a type (z.unknown()/z.any() are not structural)',
    );
  }
  if (out['type'] === 'array' && out['items'] === undefined) {
    throw new NonStructuralSchemaError(path, 'an array needs items');
  }
  // A lone enum value of a default must be valid; the apiserver checks that, the generator too.
  if (Array.isArray(out['enum']) && out['default'] !== undefined && !out['enum'].includes(out['default'])) {
    throw new NonStructuralSchemaError(path, 'default is not one of the enum values');
  }
  return ordered(out);
}

function isEmpty(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

function ordered(node: JSONSchemaProps): JSONSchemaProps {
  const out: JSONSchemaProps = {};
  for (const key of KEY_ORDER) if (node[key] !== undefined) out[key] = node[key];
  for (const key of Object.keys(node)) if (!(key in out)) out[key] = node[key];
  return out;
}
