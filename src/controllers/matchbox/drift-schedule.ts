// When drift scans run: per endpoint, every interval, and after a failed scan again with the
// runtime's exponential backoff (capped at the interval), so one unreachable endpoint never
// delays the others. Scans start when the first sync reconcile arms the schedule: controllers
// reconcile only on the leader, so a standby replica never scans. (The runtime has no way to
// enqueue a synthetic key when a controller starts; with one, this would be a reconcile of
// `endpoint/<name>` returning requeueAfter.)
import { type BackoffOptions, backoffDelay } from '../../runtime/backoff.ts';
import { errorFields, type Logger } from '../../runtime/logger.ts';
import type { Endpoint } from './endpoints.ts';

export interface DriftScheduleOptions {
  endpoints: readonly Endpoint[];
  intervalMs: number;
  scan: (endpoint: Endpoint) => Promise<unknown>;
  logger: Logger;
  /** Delay of the first retry after a failed scan (default 1 s). */
  retryBaseMs?: number;
}

interface Slot {
  endpoint: Endpoint;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  failures: number;
}

export class DriftSchedule {
  #options: DriftScheduleOptions;
  #slots: Slot[];
  #armed = false;
  #stopped = false;

  constructor(options: DriftScheduleOptions) {
    this.#options = options;
    this.#slots = options.endpoints.map((endpoint) => ({
      endpoint,
      timer: undefined,
      running: undefined,
      failures: 0,
    }));
  }

  get armed(): boolean {
    return this.#armed;
  }

  /** Starts scanning every endpoint now and then periodically; later calls do nothing. `signal` stops it. */
  arm(signal?: AbortSignal): void {
    if (this.#armed || this.#stopped || signal?.aborted) return;
    this.#armed = true;
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    for (const slot of this.#slots) this.#schedule(slot, 0);
  }

  /** Scans one endpoint now (waiting for a scan already running), outside the schedule. */
  async scanNow(name: string): Promise<void> {
    const slot = this.#slots.find((s) => s.endpoint.name === name);
    if (!slot) throw new Error(`no Matchbox endpoint named ${name}`);
    await slot.running;
    clearTimeout(slot.timer);
    await this.#run(slot);
  }

  /** Cancels the timers and waits for running scans. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const slot of this.#slots) clearTimeout(slot.timer);
    await Promise.allSettled(this.#slots.map((s) => s.running));
  }

  #schedule(slot: Slot, delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      if (!slot.running) void this.#run(slot);
    }, delayMs);
    slot.timer.unref?.();
  }

  #run(slot: Slot): Promise<void> {
    const { intervalMs, logger } = this.#options;
    const run = (async () => {
      try {
        await this.#options.scan(slot.endpoint);
        slot.failures = 0;
        if (this.#armed) this.#schedule(slot, intervalMs);
      } catch (error) {
        slot.failures++;
        const backoff: BackoffOptions = {
          baseMs: this.#options.retryBaseMs ?? 1000,
          capMs: intervalMs,
          jitter: 0.2,
        };
        const delayMs = backoffDelay(slot.failures, backoff);
        logger.warn(
          {
            endpoint: slot.endpoint.name,
            failures: slot.failures,
            retryInMs: Math.round(delayMs),
            ...errorFields(error),
          },
          'drift scan failed',
        );
        if (this.#armed) this.#schedule(slot, delayMs);
      }
    })();
    slot.running = run;
    void run.finally(() => {
      if (slot.running === run) slot.running = undefined;
    });
    return run;
  }
}
