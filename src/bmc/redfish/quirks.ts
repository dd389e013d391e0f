// Vendor behaviour selected by the address scheme (idrac-redfish://, ilo5-redfish://). Only behaviour that
// changes a request is here; what the BMC advertises (reset types, boot targets) is read at run time.
import type { RedfishVendor } from '../address.ts';

export interface RedfishQuirks {
  /**
   * How BootSourceOverrideMode is handled in a one-time boot PATCH:
   * - 'always': sent whenever the System has the property. Some BMCs (Supermicro is the known case,
   *   DMTF/Redfishtool#106) fall back to their default mode when a PATCH omits it.
   * - 'whenChanged': sent only if it differs from the current mode. iDRAC maps it onto the BIOS boot
   *   mode, where a change queues a BIOS configuration job; re-sending an unchanged value is needless risk.
   * - 'never': read-only. iLO 5 rejects any write to it, even of the current value (metal3-docs#581,
   *   ansible community.general#3509); the boot mode is changed in the BIOS settings instead.
   */
  bootModeWrite: 'always' | 'whenChanged' | 'never';
}

const quirks: Record<RedfishVendor, RedfishQuirks> = {
  generic: { bootModeWrite: 'always' },
  idrac: { bootModeWrite: 'whenChanged' },
  ilo5: { bootModeWrite: 'never' },
};

export function quirksFor(vendor: RedfishVendor): RedfishQuirks {
  return quirks[vendor];
}
