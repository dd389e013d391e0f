// Identity conflicts: two hosts with the same boot MAC (Matchbox would give both machines one boot
// answer) or the same BMC (both would drive one machine), or a MatchboxGroup this host does not own
// that selects its MAC (Matchbox would pick one of the two groups). Matchbox and BMCs are shared
// by every namespace, so hosts and groups of all watched namespaces are compared.
import { parseBmcAddress } from '../../bmc/address.ts';
import type { BareMetalHost } from '../../crds/baremetalhost.ts';
import { normalizeMac } from '../../crds/common.ts';
import type { MatchboxGroup } from '../../crds/matchboxgroup.ts';
import type { Resource } from '../../runtime/resource.ts';
import { hostKey } from './bmc.ts';

export interface IdentityConflict {
  reason: 'DuplicateBootMACAddress' | 'DuplicateBMCAddress' | 'ForeignMatchboxGroup';
  message: string;
}

/** The machine a BMC address designates: scheme-independent, default ports filled in. */
export function bmcIdentity(address: string): string | undefined {
  try {
    const a = parseBmcAddress(address);
    return a.protocol === 'ipmi' ? `ipmi:${a.key}` : `redfish:${a.key}${a.systemPath ?? ''}`;
  } catch {
    return undefined;
  }
}

export function bootMac(host: BareMetalHost): string | undefined {
  const mac = (host.spec as { bootMACAddress?: string }).bootMACAddress;
  return mac ? normalizeMac(mac) : undefined;
}

/** True when `group` is controlled by `host` (ownerReference with controller=true and its uid). */
export function ownedBy(obj: Resource, host: BareMetalHost): boolean {
  return (obj.metadata.ownerReferences ?? []).some(
    (o) => o.kind === 'BareMetalHost' && o.uid === host.metadata.uid && o.controller === true,
  );
}

export function findConflicts(
  host: BareMetalHost,
  hosts: readonly BareMetalHost[],
  groups: readonly (MatchboxGroup & Resource)[],
): IdentityConflict[] {
  const conflicts: IdentityConflict[] = [];
  const key = hostKey(host);
  const mac = bootMac(host);
  const bmc = bmcIdentity(host.spec.bmc.address);
  const sameMac: string[] = [];
  const sameBmc: string[] = [];
  for (const other of hosts) {
    if (hostKey(other) === key) continue;
    if (mac && bootMac(other) === mac) sameMac.push(hostKey(other));
    if (bmc && bmcIdentity(other.spec.bmc.address) === bmc) sameBmc.push(hostKey(other));
  }
  if (sameMac.length > 0) {
    conflicts.push({
      reason: 'DuplicateBootMACAddress',
      message: `spec.bootMACAddress ${mac} is also the boot MAC of ${sameMac.sort().join(', ')}; Matchbox cannot tell the machines apart`,
    });
  }
  if (sameBmc.length > 0) {
    conflicts.push({
      reason: 'DuplicateBMCAddress',
      message: `spec.bmc.address designates the same BMC system as ${sameBmc.sort().join(', ')}; both hosts would drive one machine`,
    });
  }
  if (mac) {
    const foreign = groups
      .filter((g) => !ownedBy(g, host) && !g.metadata.deletionTimestamp)
      .filter((g) => {
        const selected = g.spec.selector?.mac;
        return selected !== undefined && normalizeMac(selected) === mac;
      })
      .map((g) => `${g.metadata.namespace}/${g.metadata.name}`)
      .sort();
    if (foreign.length > 0) {
      conflicts.push({
        reason: 'ForeignMatchboxGroup',
        message: `MatchboxGroup ${foreign.join(', ')} also selects mac ${mac}, so Matchbox could answer it instead of this host's own group; delete it (this host now owns its MAC's boot answer)`,
      });
    }
  }
  return conflicts;
}
