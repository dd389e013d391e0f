// Leader election for controllers sharing one embedded store directory: a row in the store's
// `leases` table, taken when free or expired and renewed every retry period inside an IMMEDIATE
// transaction; leadership ends when no renewal succeeded within the renew deadline. The same
// contract as the Lease and etcd electors.
import type { LeaderElector } from '../runtime/leader.ts';
import type { SqliteStore } from './sqlite.ts';

export interface SqliteElectorOptions {
  store: SqliteStore;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onChange?: (leading: boolean, detail: string) => void;
}

export class SqliteElector implements LeaderElector {
  readonly identity: string;
  readonly #store: SqliteStore;
  readonly #name: string;
  readonly #leaseMs: number;
  readonly #deadlineMs: number;
  readonly #retryMs: number;
  readonly #onChange: ((leading: boolean, detail: string) => void) | undefined;
  #leading = false;
  #stopped = false;
  #wake: (() => void) | undefined;

  constructor(options: SqliteElectorOptions) {
    this.identity = options.identity;
    this.#store = options.store;
    this.#name = options.name;
    this.#leaseMs = options.leaseDurationMs ?? 15_000;
    this.#deadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryMs = options.retryPeriodMs ?? 2_000;
    this.#onChange = options.onChange;
  }

  /** One attempt: the holder after it (this identity when acquired). */
  tryAcquire(): { acquired: boolean; holder: string } {
    try {
      return this.#store.tryLease(this.#name, this.identity, this.#leaseMs);
    } catch {
      return { acquired: false, holder: '' };
    }
  }

  async run(onStartedLeading: () => void, onStoppedLeading: (reason: string) => void): Promise<void> {
    while (!this.#stopped && !this.tryAcquire().acquired) await this.#sleep(this.#retryMs);
    if (this.#stopped) return;
    this.#setLeading(true, 'acquired the lease');
    onStartedLeading();
    let lastRenew = Date.now();
    let reason = 'stopped';
    while (!this.#stopped) {
      await this.#sleep(this.#retryMs);
      if (this.#stopped) break;
      if (this.tryAcquire().acquired) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.#deadlineMs) {
        reason = `could not renew the lease within ${this.#deadlineMs} ms`;
        break;
      }
    }
    this.#setLeading(false, reason);
    onStoppedLeading(reason);
  }

  async release(): Promise<void> {
    const wasLeading = this.#leading;
    this.#stopped = true;
    this.#wake?.();
    if (!wasLeading) return;
    try {
      this.#store.releaseLease(this.#name, this.identity);
    } catch {
      // best effort: the lease expires on its own
    }
  }

  #setLeading(leading: boolean, detail: string): void {
    this.#leading = leading;
    this.#onChange?.(leading, detail);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
