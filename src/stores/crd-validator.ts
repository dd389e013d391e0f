// The apiserver's schema check for stores without an apiserver (etcd, file): metalbox.io objects
// are validated against the same zod schemas the CRDs are generated from, on every write
// (status writes too), with the apiserver's field paths and messages. Other kinds pass.
import { GROUP } from '../crds/common.ts';
import { validateObject } from '../crds/validate.ts';
import type { FieldError } from '../runtime/errors.ts';
import type { Resource, ResourceKind } from '../runtime/resource.ts';
import type { Validator } from '../runtime/store.ts';

export const crdValidator: Validator = (obj: Resource, kind: ResourceKind): FieldError[] => {
  if (kind.group !== GROUP) return [];
  const result = validateObject(obj);
  return result.ok ? [] : result.errors.map((e) => ({ path: e.path, message: e.detail }));
};
