// Vendor behaviour that changes a request, selected by the address scheme (idrac-redfish://,
// ilo5-redfish://) or, for a generic redfish:// address, detected from the service root (Vendor,
// Product, Oem). What the BMC advertises (reset types, boot targets) is read at run time instead.
// The boot-mode rule lives here, once: the mode is never changed unless the caller asks for a mode.
import type { RedfishVendor } from '../address.ts';
import type { BootMode } from '../driver.ts';
import type { ServiceRoot } from './schemas.ts';

/** Who made the BMC, as the service root says. */
export type VendorFamily = 'dell' | 'hpe' | 'supermicro' | 'lenovo' | 'other';

export interface RedfishQuirks {
  /** Which quirks these are, for messages. */
  name: 'generic' | 'idrac' | 'ilo5' | 'supermicro';
  /**
   * How BootSourceOverrideMode is handled in a boot override PATCH:
   * - 'preserve': the current mode is sent with every override, asked for or not. Supermicro falls back
   *   to its default mode when a PATCH omits it (DMTF/Redfishtool#106), which would change the mode.
   * - 'whenChanged': sent only when the caller asks for a mode that differs from the current one.
   *   iDRAC maps it onto the BIOS boot mode, where a change queues a BIOS configuration job.
   * - 'never': read-only. iLO 5 rejects any write to it, even of the current value (metal3-docs#581,
   *   ansible community.general#3509); the boot mode is changed in the BIOS settings instead.
   */
  bootModeWrite: 'preserve' | 'whenChanged' | 'never';
}

const quirks: Record<RedfishQuirks['name'], RedfishQuirks> = {
  generic: { name: 'generic', bootModeWrite: 'whenChanged' },
  idrac: { name: 'idrac', bootModeWrite: 'whenChanged' },
  ilo5: { name: 'ilo5', bootModeWrite: 'never' },
  supermicro: { name: 'supermicro', bootModeWrite: 'preserve' },
};

export function quirksFor(vendor: RedfishVendor): RedfishQuirks {
  return quirks[vendor];
}

/** The vendor the service root names (Vendor, then Oem keys, then Product). */
export function detectVendor(root: ServiceRoot): VendorFamily {
  const oem = Object.keys(root.Oem ?? {}).map((k) => k.toLowerCase());
  const text = `${root.Vendor ?? ''} ${root.Product ?? ''}`.toLowerCase();
  if (/\bdell\b/.test(text) || oem.includes('dell')) return 'dell';
  if (/\bhpe?\b|hewlett/.test(text) || oem.includes('hpe') || oem.includes('hp')) return 'hpe';
  if (/supermicro/.test(text) || oem.includes('supermicro')) return 'supermicro';
  if (/lenovo/.test(text) || oem.includes('lenovo')) return 'lenovo';
  return 'other';
}

/** The scheme to write for a vendor when its quirks matter, if metalbox has one. */
export const vendorScheme: Partial<Record<VendorFamily, string>> = {
  dell: 'idrac-redfish',
  hpe: 'ilo5-redfish',
};

/** Quirks for a generic address on a BMC whose service root names the vendor. */
export function quirksForDetected(vendor: VendorFamily): RedfishQuirks {
  if (vendor === 'dell') return quirks.idrac;
  if (vendor === 'hpe') return quirks.ilo5;
  if (vendor === 'supermicro') return quirks.supermicro;
  return quirks.generic;
}

export type BootModeDecision =
  | { send: undefined }
  | { send: 'UEFI' | 'Legacy' }
  | { refuse: string }
  | { unavailable: string };

/**
 * THE boot-mode rule. `asked` is the caller's mode (undefined: leave it); `current` the System's
 * BootSourceOverrideMode (undefined when the System has none).
 */
export function decideBootMode(
  q: RedfishQuirks,
  asked: BootMode | undefined,
  current: string | undefined,
  allowed: readonly string[] | undefined,
): BootModeDecision {
  const want = asked === undefined ? undefined : asked === 'UEFI' ? 'UEFI' : 'Legacy';
  if (current === undefined && !(allowed && allowed.length > 0)) {
    return want === undefined
      ? { send: undefined }
      : {
          unavailable: `the System has no BootSourceOverrideMode; boot mode ${want} cannot be set, left as is`,
        };
  }
  if (want !== undefined && allowed && allowed.length > 0 && !allowed.includes(want)) {
    return { refuse: `boot mode ${want} (it offers ${allowed.join(', ')})` };
  }
  if (q.bootModeWrite === 'never') {
    if (want !== undefined && current !== undefined && current !== want) {
      return {
        refuse: `changing the boot mode through Redfish (it is ${current}; change it to ${want} in the BIOS settings)`,
      };
    }
    return { send: undefined };
  }
  if (q.bootModeWrite === 'preserve') {
    const mode = want ?? current;
    return { send: mode === 'UEFI' || mode === 'Legacy' ? mode : undefined };
  }
  return { send: want !== undefined && want !== current ? want : undefined };
}
