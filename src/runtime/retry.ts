import { setTimeout as sleep } from 'node:timers/promises';
import { isConflict } from './errors.ts';

export interface RetryOptions {
  /** Tries in total (default 5). */
  attempts?: number;
  /** Delay before the second try; doubles after each, with jitter (default 10 ms). */
  delayMs?: number;
}

/** Runs `fn` (which must re-read what it changes) again while it throws ConflictError. */
export async function retryOnConflict<T>(fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 5;
  let delay = options.delayMs ?? 10;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!isConflict(e) || i >= attempts) throw e;
    }
    await sleep(delay * (0.5 + Math.random() / 2));
    delay *= 2;
  }
}
