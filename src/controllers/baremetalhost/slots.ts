// The global provisioning limit (Metal3's PROVISIONING_LIMIT). A host holds a slot while an install
// attempt of it is running (status.provisioning.startedAt set), which survives restarts because
// it is in status; claims made in this process and not yet visible in the cache count too, so two
// hosts reconciled at once cannot both take the last slot.
import type { BareMetalHost } from '../../crds/baremetalhost.ts';
import { hostKey } from './bmc.ts';

/** An install attempt is running (in provisioning, or in error between two steps of it). */
export function holdsSlot(host: BareMetalHost): boolean {
  const p = host.status?.provisioning;
  return (p?.state === 'provisioning' || p?.state === 'error') && p.startedAt !== undefined;
}

export class ProvisioningSlots {
  readonly limit: number;
  #holders: () => ReadonlySet<string>;
  #claims = new Set<string>();

  /** `holders`: keys of hosts whose status shows a running attempt (from the cache). */
  constructor(limit: number, holders: () => ReadonlySet<string>) {
    this.limit = limit;
    this.#holders = holders;
  }

  /** Hosts holding a slot now. */
  inUse(): number {
    const holders = this.#holders();
    let n = holders.size;
    for (const key of this.#claims) if (!holders.has(key)) n++;
    return n;
  }

  /** Takes a slot for `host` unless it already has one; false when the limit is reached. */
  claim(host: BareMetalHost): boolean {
    const key = hostKey(host);
    if (holdsSlot(host) || this.#claims.has(key)) return true;
    if (this.inUse() >= this.limit) return false;
    this.#claims.add(key);
    return true;
  }

  /** The host's attempt ended (or its claim is now visible in status). */
  release(key: string): void {
    this.#claims.delete(key);
  }
}
