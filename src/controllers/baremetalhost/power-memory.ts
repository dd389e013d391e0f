// Remembers the last power change asked of each host, so that while a BMC is still applying it
// (sushy-tools takes up to 11 s, real servers longer) the controller waits instead of asking again.
export type PowerWish = 'on' | 'off' | 'cycle';

export class PowerMemory {
  #last = new Map<string, { wish: PowerWish; at: number }>();
  #settleMs: number;

  constructor(settleMs: number) {
    this.#settleMs = settleMs;
  }

  record(key: string, wish: PowerWish, now: number): void {
    this.#last.set(key, { wish, at: now });
  }

  /** True while a change asked less than settleMs ago may still be under way. */
  settling(key: string, now: number): boolean {
    const last = this.#last.get(key);
    return last !== undefined && now - last.at < this.#settleMs;
  }

  forget(key: string): void {
    this.#last.delete(key);
  }
}
