/**
 * Leader election for standalone replicas through etcd: each candidate puts a key under
 * `<prefix>/leader/<name>/` bound to its own lease; the key with the lowest create revision leads
 * (etcd's concurrency.Election). Its lease is renewed every retryPeriod; when no renewal has
 * succeeded for renewDeadline (shorter than the lease TTL, measured from before the request was
 * sent) the leader stops at once, before etcd can expire its key and let a standby in. Like the
 * Lease elector it never leads again: the process exits and a fresh one campaigns.
 */
import type { Etcd3 } from 'etcd3';
import type { LeaderElector } from '../runtime/leader.ts';

export interface EtcdElectorOptions {
  client: Etcd3;
  /** Same prefix as the store (default `/metalbox`). */
  prefix?: string;
  /** Election name (default `controller`). */
  name?: string;
  /** Unique per replica (host name + random suffix). */
  identity: string;
  /** Lease TTL: how long a dead leader blocks the others (default 15 s). */
  leaseTtlSeconds?: number;
  /** Stop leading when no renewal succeeded for this long (default 10 s; must be below the TTL). */
  renewDeadlineMs?: number;
  /** Renewal and candidate poll interval (default 2 s). */
  retryPeriodMs?: number;
  /** Observes every state change, for logs and the leader metric. */
  onChange?: (leading: boolean, detail: string) => void;
}

export class EtcdElector implements LeaderElector {
  readonly identity: string;
  readonly #client: Etcd3;
  readonly #dir: string;
  readonly #ttl: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #onChange: ((leading: boolean, detail: string) => void) | undefined;
  #stopped = false;
  #leading = false;
  #leaseId: string | undefined;
  #lastRenew = 0;
  #wake: (() => void) | undefined;
  #lost: ((reason: string) => void) | undefined;
  #running: Promise<void> | undefined;

  constructor(options: EtcdElectorOptions) {
    this.identity = options.identity;
    this.#client = options.client;
    const prefix = (options.prefix ?? '/metalbox').replace(/\/+$/, '');
    this.#dir = `${prefix}/leader/${options.name ?? 'controller'}/`;
    this.#ttl = options.leaseTtlSeconds ?? 15;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.#onChange = options.onChange;
    if (this.#renewDeadlineMs >= this.#ttl * 1000) {
      throw new Error(
        `renewDeadlineMs (${this.#renewDeadlineMs}) must be below the lease TTL (${this.#ttl} s), or two replicas could lead at once`,
      );
    }
  }

  get leading(): boolean {
    return this.#leading;
  }

  run(onStartedLeading: () => void, onStoppedLeading: (reason: string) => void): Promise<void> {
    this.#running = this.#run(onStartedLeading, onStoppedLeading);
    return this.#running;
  }

  async #run(onStartedLeading: () => void, onStoppedLeading: (reason: string) => void): Promise<void> {
    while (!this.#stopped && !(await this.#campaign())) {
      await this.#sleep(this.#retryPeriodMs);
    }
    if (this.#stopped) {
      await this.#revoke();
      return;
    }
    this.#setLeading(true, 'holds the oldest election key');
    onStartedLeading();
    const reason = await this.#hold();
    this.#setLeading(false, reason);
    onStoppedLeading(reason);
    await this.#revoke();
  }

  /** Stops campaigning and revokes the lease, so a standby takes over without waiting for the TTL. */
  async release(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    this.#lost?.('released');
    if (this.#running) await this.#running;
    else await this.#revoke();
  }

  /** Puts our key and waits until it is the oldest; false to retry after a failure. */
  async #campaign(): Promise<boolean> {
    const watcher = this.#client.watch().prefix(this.#dir).only('delete').watcher();
    watcher.on('delete', () => this.#wake?.());
    try {
      if (this.#leaseId === undefined) {
        const sentAt = Date.now();
        const granted = await this.#client.leaseClient.leaseGrant({ TTL: this.#ttl });
        this.#leaseId = granted.ID;
        this.#lastRenew = sentAt;
      }
      while (!this.#stopped) {
        const renewed = await this.#renew();
        if (renewed === 'expired') {
          this.#leaseId = undefined;
          return false;
        }
        if (renewed === 'failed' && this.#sinceRenew() > this.#renewDeadlineMs) {
          await this.#revoke();
          return false;
        }
        // Put-if-absent every round: a key lost with an earlier lease is never silently missing.
        const key = this.#key();
        await this.#client.kv.txn({
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key, value: Buffer.from(this.identity), lease: this.#leaseId } }],
          failure: [],
        });
        const first = await this.#client.kv.range({
          key: Buffer.from(this.#dir),
          range_end: prefixEnd(this.#dir),
          sort_order: 'Ascend',
          sort_target: 'Create',
          limit: 1,
        });
        if (first.kvs[0]?.key.equals(key)) return true;
        await this.#sleep(this.#retryPeriodMs);
      }
      return false;
    } catch (error) {
      if (/lease not found/.test(String(error)) || this.#sinceRenew() > this.#renewDeadlineMs) {
        this.#leaseId = undefined;
      }
      return false;
    } finally {
      watcher.removeAllListeners();
      watcher.cancel().catch(() => {});
    }
  }

  /** Renews until a renewal deadline passes or release(); resolves with the reason leadership ended. */
  #hold(): Promise<string> {
    return new Promise((resolve) => {
      let done = false;
      let deadline: NodeJS.Timeout | undefined;
      const finish = (reason: string) => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        this.#lost = undefined;
        this.#wake?.();
        resolve(reason);
      };
      this.#lost = finish;
      // A timer, not the loop, enforces the deadline: a renewal stuck in the network must not delay it.
      const arm = () => {
        clearTimeout(deadline);
        deadline = setTimeout(
          () => finish(`could not renew the etcd lease within ${this.#renewDeadlineMs} ms`),
          Math.max(0, this.#lastRenew + this.#renewDeadlineMs - Date.now()),
        );
      };
      arm();
      void (async () => {
        while (!done && !this.#stopped) {
          await this.#sleep(this.#retryPeriodMs);
          if (done || this.#stopped) break;
          const renewed = await this.#renew();
          if (done) break;
          if (renewed === 'expired') finish('the etcd lease expired');
          else if (renewed === 'ok') arm();
        }
        finish('released');
      })();
    });
  }

  /** One keepalive, bounded by retryPeriod. */
  async #renew(): Promise<'ok' | 'expired' | 'failed'> {
    const id = this.#leaseId;
    if (id === undefined) return 'expired';
    const sentAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const stream = await this.#client.leaseClient.leaseKeepAlive();
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          timer = setTimeout(() => reject(new Error('keepalive timed out')), this.#retryPeriodMs);
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.write({ ID: id });
        });
        if (Number(res.TTL) <= 0) return 'expired';
        this.#lastRenew = sentAt;
        return 'ok';
      } finally {
        clearTimeout(timer);
        stream.end();
      }
    } catch {
      return 'failed';
    }
  }

  async #revoke(): Promise<void> {
    const id = this.#leaseId;
    this.#leaseId = undefined;
    if (id === undefined) return;
    await this.#client.leaseClient
      .leaseRevoke({ ID: id }, { deadline: Date.now() + this.#retryPeriodMs })
      .catch(() => {}); // best effort: the lease expires on its own
  }

  #key(): Buffer {
    return Buffer.from(`${this.#dir}${this.#leaseId}`);
  }

  #sinceRenew(): number {
    return Date.now() - this.#lastRenew;
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

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1; // the prefix ends in '/', never 0xff
  return end;
}
