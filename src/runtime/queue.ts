/**
 * Work queue of object keys (`namespace/name`), after client-go's: a key waits at most once
 * (dedupe); one key is never processed by two workers at once, and a key added while it is being
 * processed runs again afterwards; failures retry with per-key exponential backoff; success forgets
 * the failures; `requeueAfter` schedules the key again.
 */
import { type BackoffOptions, backoffDelay } from './backoff.ts';

export interface QueueResult {
  /** Process the key again after this many ms (0: at once). */
  requeueAfter?: number;
}

// biome-ignore lint/suspicious/noConfusingVoidType: lets a handler that returns nothing type-check.
export type QueueHandler = (key: string) => Promise<QueueResult | undefined | void>;

export interface QueueOptions {
  /** Keys processed in parallel (default 1). */
  workers?: number;
  /** Backoff after a failure (default 1 s doubling to 5 min, 20 % jitter). */
  backoff?: BackoffOptions;
  /** Picks the backoff per error, e.g. a short one for conflicts. Defaults to `backoff`. */
  backoffFor?: (error: unknown) => BackoffOptions;
  /** Told about every failure and the delay before the retry. */
  onError?: (key: string, error: unknown, failures: number, delayMs: number) => void;
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, capMs: 300_000, jitter: 0.2 };

export class WorkQueue {
  #handler: QueueHandler;
  #workers: number;
  #backoffFor: (error: unknown) => BackoffOptions;
  #onError: QueueOptions['onError'];
  #random: () => number;
  /** Ready keys in arrival order; a Set gives dedupe for free. */
  #ready = new Set<string>();
  #processing = new Set<string>();
  /** Keys added while being processed: run again when done. */
  #again = new Set<string>();
  #delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #failures = new Map<string, number>();
  #inFlight = new Set<Promise<void>>();
  #idleWaiters: (() => void)[] = [];
  #stopped = false;

  constructor(handler: QueueHandler, options: QueueOptions = {}) {
    this.#handler = handler;
    this.#workers = Math.max(1, options.workers ?? 1);
    const backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#backoffFor = options.backoffFor ?? (() => backoff);
    this.#onError = options.onError;
    this.#random = options.random ?? Math.random;
  }

  /** Keys waiting to be processed now (not counting delayed or in-flight ones). */
  get depth(): number {
    return this.#ready.size;
  }

  get processing(): number {
    return this.#processing.size;
  }

  /** Keys scheduled for later (backoff or requeueAfter). */
  get delayed(): number {
    return this.#delayed.size;
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#processing.has(key)) {
      this.#again.add(key);
      return;
    }
    this.#ready.add(key);
    this.#pump();
  }

  /** Adds the key after `ms`; an earlier pending schedule for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const existing = this.#delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { at, timer });
  }

  /** Resolves when nothing is ready or in flight (delayed keys may remain). For tests and tools. */
  idle(): Promise<void> {
    if (this.#ready.size === 0 && this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops taking work, drops what waits, and resolves when in-flight keys are done. */
  async shutdown(): Promise<void> {
    this.#stopped = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    this.#ready.clear();
    this.#again.clear();
    await Promise.allSettled([...this.#inFlight]);
  }

  #pump(): void {
    while (!this.#stopped && this.#processing.size < this.#workers && this.#ready.size > 0) {
      const key = this.#ready.values().next().value as string;
      this.#ready.delete(key);
      this.#processing.add(key);
      const run = this.#process(key);
      this.#inFlight.add(run);
      void run.finally(() => this.#inFlight.delete(run));
    }
  }

  async #process(key: string): Promise<void> {
    try {
      const result = await this.#handler(key);
      this.#failures.delete(key);
      const after = result?.requeueAfter;
      if (after !== undefined) this.addAfter(key, after);
    } catch (error) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const delay = backoffDelay(failures, this.#backoffFor(error), this.#random);
      this.addAfter(key, delay);
      try {
        this.#onError?.(key, error, failures, delay);
      } catch {
        // A reporting hook must not break the queue.
      }
    } finally {
      this.#processing.delete(key);
      if (this.#again.delete(key)) this.#ready.add(key);
      this.#pump();
      if (this.#ready.size === 0 && this.#processing.size === 0) {
        for (const resolve of this.#idleWaiters.splice(0)) resolve();
      }
    }
  }
}
