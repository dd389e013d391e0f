import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** What is awaited, for the timeout message. */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
  /** Called on timeout to add context (e.g. a peer's log tail). */
  context?: () => string;
  /** Fails fast when the awaited thing can no longer happen (e.g. the process exited). */
  abortIf?: () => string | undefined;
}

/** Polls `probe` until it returns a value other than undefined/false; throws on timeout. */
export async function waitFor<T>(probe: () => Promise<T | undefined | false>, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    const aborted = opts.abortIf?.();
    if (aborted !== undefined || Date.now() > deadline) {
      const reason = aborted ?? `timed out after ${opts.timeoutMs ?? 30_000} ms`;
      const last = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      const ctx = opts.context ? `\n--- context ---\n${opts.context()}` : '';
      throw new Error(`waiting for ${opts.what}: ${reason}${last}${ctx}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}
