/**
 * Leader election as the manager sees it. Lease (kube) and etcd electors implement this elsewhere;
 * the manager reconciles only between onStartedLeading and onStoppedLeading.
 */
export interface LeaderElector {
  /** Who this replica is (pod or host name), for logs. */
  readonly identity: string;
  /**
   * Campaigns until elected, then calls onStartedLeading; calls onStoppedLeading once when
   * leadership ends for any reason (renewal failed, or release()), with a reason for the log.
   * Resolves when it has stopped.
   */
  run(onStartedLeading: () => void, onStoppedLeading: (reason?: string) => void): Promise<void>;
  /** Stops campaigning and gives leadership up (so a standby takes over without waiting). */
  release(): Promise<void>;
}

/** Single replica: leads at once, until released. */
export class AlwaysLeader implements LeaderElector {
  readonly identity: string;
  #release: (() => void) | undefined;
  #released = false;

  constructor(identity = 'single') {
    this.identity = identity;
  }

  run(onStartedLeading: () => void, onStoppedLeading: (reason?: string) => void): Promise<void> {
    if (this.#released) return Promise.resolve();
    return new Promise((resolve) => {
      this.#release = () => {
        onStoppedLeading('released');
        resolve();
      };
      onStartedLeading();
    });
  }

  async release(): Promise<void> {
    this.#released = true;
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }
}
