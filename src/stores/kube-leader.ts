// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics: acquire when the
// holder's lease has expired by *our* observation clock, renew every retryPeriod, and give up
// leadership when no renewal succeeded within renewDeadline. A lost race is a 409 on the
// resourceVersion-guarded write.
import {
  ApiException,
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { LeaderElector } from '../runtime/leader.ts';

export interface LeaseElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** Unique per replica (pod name + random suffix). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Observes every state change, for logs and the leader metric. */
  onChange?: (leading: boolean, detail: string) => void;
}

export class LeaseElector implements LeaderElector {
  readonly #api: CoordinationV1Api;
  readonly #opts: Required<Omit<LeaseElectorOptions, 'kubeConfig' | 'onChange'>> &
    Pick<LeaseElectorOptions, 'onChange'>;
  #leading = false;
  #stopped = false;
  #wake: (() => void) | undefined;
  /** When we last saw the lease record change, by our clock (remote timestamps are not trusted). */
  #observed: { key: string; at: number } | undefined;
  /** Why the last attempt failed, so a lost lease says why instead of only that it was lost. */
  #lastFailure = '';

  constructor(options: LeaseElectorOptions) {
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#opts = {
      namespace: options.namespace,
      name: options.name,
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
      onChange: options.onChange,
    };
  }

  get identity(): string {
    return this.#opts.identity;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Campaigns until leading, calls onStartedLeading, renews, and resolves after onStoppedLeading
   * once leadership is lost or stop() was called. It never regains leadership by itself: a replica
   * that lost its lease must exit (as controller-runtime does) so no two leaders ever overlap.
   */
  async run(onStartedLeading: () => void, onStoppedLeading: (reason: string) => void): Promise<void> {
    while (!this.#stopped && !this.#leading) {
      if (await this.#tryAcquireOrRenew()) break;
      await this.#sleep(this.#opts.retryPeriodMs);
    }
    if (this.#stopped) return;
    this.#setLeading(true, 'acquired the lease');
    onStartedLeading();
    let lastRenew = Date.now();
    let reason = 'stopped';
    while (!this.#stopped) {
      await this.#sleep(this.#opts.retryPeriodMs);
      if (this.#stopped) break;
      if (await this.#tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.#opts.renewDeadlineMs) {
        reason = `could not renew the lease within ${this.#opts.renewDeadlineMs} ms (${this.#lastFailure})`;
        break;
      }
    }
    this.#setLeading(false, reason);
    onStoppedLeading(reason);
  }

  /** Stops campaigning and hands the lease back, so a standby takes over without waiting for expiry. */
  async release(): Promise<void> {
    await this.stop({ release: true });
  }

  /** Stops campaigning/renewing; with release, hands the lease back so another replica takes over at once. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    const wasLeading = this.#leading;
    this.#stopped = true;
    this.#wake?.();
    if (options.release && wasLeading) await this.#release();
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#opts;
    const now = new V1MicroTime(Date.now());
    const durationSeconds = Math.ceil(this.#opts.leaseDurationMs / 1000);
    let current: V1Lease;
    try {
      current = await this.#api.readNamespacedLease({ namespace, name });
    } catch (error) {
      if (!(error instanceof ApiException) || error.code !== 404) return this.#fail('read', error);
      try {
        await this.#api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (error) {
        return this.#fail('create', error); // 409: someone else created it first
      }
    }
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const recordKey = `${holder}|${current.metadata?.resourceVersion}`;
    if (this.#observed?.key !== recordKey) this.#observed = { key: recordKey, at: Date.now() };
    const heldByOther = holder !== '' && holder !== identity;
    const expiresAt = this.#observed.at + (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (heldByOther && Date.now() < expiresAt) {
      this.#lastFailure = `held by ${holder}`;
      return false;
    }
    try {
      await this.#api.replaceNamespacedLease({
        namespace,
        name,
        body: {
          metadata: { ...current.metadata, name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            // client-node reads MicroTimes back as strings (or Dates), never as V1MicroTime.
            acquireTime: holder === identity && spec.acquireTime ? microTime(spec.acquireTime) : now,
            renewTime: now,
            leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
          },
        },
      });
      return true;
    } catch (error) {
      return this.#fail('update', error); // 409 = lost the race; anything else = cannot renew right now
    }
  }

  #fail(verb: string, error: unknown): false {
    const detail =
      error instanceof ApiException ? `HTTP ${error.code}` : String((error as Error)?.message ?? error);
    this.#lastFailure = `${verb}: ${detail}`;
    return false;
  }

  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#opts;
    try {
      const current = await this.#api.readNamespacedLease({ namespace, name });
      if (current.spec?.holderIdentity !== identity) return;
      const now = new V1MicroTime(Date.now());
      await this.#api.replaceNamespacedLease({
        namespace,
        name,
        body: {
          metadata: current.metadata,
          spec: {
            ...current.spec,
            // Re-wrap: client-node reads MicroTimes back as plain Dates, which serialise with 3 digits.
            acquireTime: current.spec.acquireTime ? microTime(current.spec.acquireTime) : now,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: now,
          },
        },
      });
    } catch {
      // best effort: the lease expires on its own
    }
  }

  #setLeading(leading: boolean, detail: string): void {
    this.#leading = leading;
    this.#opts.onChange?.(leading, detail);
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

/** client-node may hand MicroTimes back as Dates or strings; the apiserver wants 6 fractional digits. */
function microTime(value: Date | string): V1MicroTime {
  return new V1MicroTime(new Date(value).getTime());
}
