export interface BackoffOptions {
  /** Delay after the first failure. */
  baseMs: number;
  /** Upper bound of any delay. */
  capMs: number;
  /** Fraction (0..1) shaved off at random so retries of many keys spread out (default 0.2). */
  jitter?: number;
}

/** Exponential backoff with jitter: base·2^(failures−1), capped, then reduced by up to `jitter`. */
export function backoffDelay(
  failures: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failures - 1);
  const raw = Math.min(options.capMs, options.baseMs * 2 ** Math.min(exponent, 52));
  return raw * (1 - (options.jitter ?? 0.2) * random());
}
