// Errors of the Talos side. Each names the field a person must fix and never carries a config value
// (base configs and patches hold cluster keys), so it is safe in conditions, Events and logs.

/** A rendering input is unusable: `field` is where (spec path, Secret key or document), `problem` why. */
export class TalosConfigError extends Error {
  readonly field: string;
  readonly problem: string;
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'TalosConfigError';
    this.field = field;
    this.problem = problem;
  }
}

export const isTalosConfigError = (e: unknown): e is TalosConfigError => e instanceof TalosConfigError;
