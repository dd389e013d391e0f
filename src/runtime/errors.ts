/**
 * Typed store errors, shaped after the Kubernetes API status reasons so a kube store maps HTTP
 * codes 1:1 and callers branch on the class, never on message text.
 */

/** One invalid field: `path` is dotted with [i] for list items (`spec.bmc.address`, `spec.args[2]`). */
export interface FieldError {
  path: string;
  message: string;
}

export type StoreErrorReason = 'NotFound' | 'Conflict' | 'AlreadyExists' | 'Invalid' | 'Gone';

export abstract class StoreError extends Error {
  abstract readonly reason: StoreErrorReason;
  abstract readonly code: number;
}

export class NotFoundError extends StoreError {
  readonly reason = 'NotFound';
  readonly code = 404;
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'NotFoundError';
  }
}

/** The object changed since it was read (stale resourceVersion or failed precondition): re-read and retry. */
export class ConflictError extends StoreError {
  readonly reason = 'Conflict';
  readonly code = 409;
  constructor(what: string, detail = 'the object has been modified; re-read it and apply the change again') {
    super(`${what}: ${detail}`);
    this.name = 'ConflictError';
  }
}

export class AlreadyExistsError extends StoreError {
  readonly reason = 'AlreadyExists';
  readonly code = 409;
  constructor(what: string) {
    super(`${what} already exists`);
    this.name = 'AlreadyExistsError';
  }
}

export class InvalidError extends StoreError {
  readonly reason = 'Invalid';
  readonly code = 422;
  readonly fields: FieldError[];
  constructor(what: string, fields: FieldError[]) {
    super(`${what} is invalid: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`);
    this.name = 'InvalidError';
    this.fields = fields;
  }
}

/** 410: the requested resourceVersion is older than the store's history; list again. */
export class GoneError extends StoreError {
  readonly reason = 'Gone';
  readonly code = 410;
  constructor(detail: string) {
    super(`too old resource version: ${detail}`);
    this.name = 'GoneError';
  }
}

export const isNotFound = (e: unknown): e is NotFoundError => e instanceof NotFoundError;
export const isConflict = (e: unknown): e is ConflictError => e instanceof ConflictError;
export const isAlreadyExists = (e: unknown): e is AlreadyExistsError => e instanceof AlreadyExistsError;
export const isInvalid = (e: unknown): e is InvalidError => e instanceof InvalidError;
export const isGone = (e: unknown): e is GoneError => e instanceof GoneError;
