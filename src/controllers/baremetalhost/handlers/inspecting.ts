// inspecting: the BMC's inventory into status.hardware, and the boot MAC checked against it.
import type { Inventory } from '../../../bmc/driver.ts';
import { BMH_ANNOTATIONS, type HostHardware } from '../../../crds/baremetalhost.ts';
import { normalizeMac } from '../../../crds/common.ts';
import { type Handler, type HostContext, next } from '../context.ts';
import { bootMac } from '../identity.ts';
import { CONDITIONS } from '../power.ts';
import { settledState } from '../settle.ts';

const text = (s: string | undefined) => (s === undefined ? undefined : s.slice(0, 256));

export function toHardware(inv: Inventory): HostHardware {
  const hw: HostHardware = {};
  if (inv.manufacturer) hw.manufacturer = text(inv.manufacturer);
  if (inv.model) hw.model = text(inv.model);
  if (inv.serialNumber) hw.serial = text(inv.serialNumber);
  if (inv.uuid) hw.uuid = inv.uuid.slice(0, 64);
  const cpu: NonNullable<HostHardware['cpu']> = {};
  if (inv.cpu.count !== undefined) cpu.count = inv.cpu.count;
  if (inv.cpu.model) cpu.model = text(inv.cpu.model);
  if (Object.keys(cpu).length > 0) hw.cpu = cpu;
  if (inv.memoryGiB !== undefined) hw.memoryGiB = inv.memoryGiB;
  const nics = inv.nics
    .filter((n) => normalizeMac(n.mac) !== undefined)
    .slice(0, 64)
    .map((n) => ({
      ...(n.name ? { name: text(n.name) } : {}),
      mac: normalizeMac(n.mac) as string,
      ...(n.link === 'unknown' ? {} : { linkUp: n.link === 'up' }),
      ...(n.speedMbps !== undefined ? { speedMbps: Math.round(n.speedMbps) } : {}),
    }));
  if (nics.length > 0) hw.nics = nics;
  const disks = inv.disks.slice(0, 64).map((d, i) => ({
    name: text(d.name) ?? `disk${i}`,
    ...(d.sizeBytes !== undefined ? { sizeBytes: d.sizeBytes } : {}),
    ...(d.model ? { model: text(d.model) } : {}),
    ...(d.serialNumber ? { serial: text(d.serialNumber) } : {}),
  }));
  if (disks.length > 0) hw.disks = disks;
  return hw;
}

export type BootMacDecision =
  | {
      status: 'True';
      reason: 'InInventory' | 'NotReportedByBMC' | 'FromInventory';
      mac: string;
      message: string;
    }
  | { status: 'False'; reason: 'NotInInventory' | 'Ambiguous'; message: string; mac?: string };

/**
 * The boot MAC against the inventory: the spec's value when given (flagged when the BMC lists NICs
 * and none has it), else the only NIC (or the only NIC with link), else ask for it.
 */
export function resolveBootMac(specMac: string | undefined, hw: HostHardware): BootMacDecision {
  const nics = hw.nics ?? [];
  if (specMac) {
    if (nics.length === 0)
      return {
        status: 'True',
        reason: 'NotReportedByBMC',
        mac: specMac,
        message: 'the BMC reports no NICs; using spec.bootMACAddress',
      };
    if (nics.some((n) => n.mac === specMac))
      return {
        status: 'True',
        reason: 'InInventory',
        mac: specMac,
        message: `${specMac} is a NIC of this host`,
      };
    return {
      status: 'False',
      reason: 'NotInInventory',
      mac: specMac,
      message: `spec.bootMACAddress ${specMac} is not among the NICs the BMC reports (${nics.map((n) => n.mac).join(', ')}); the host would not match its boot answer`,
    };
  }
  const linked = nics.filter((n) => n.linkUp === true);
  const only = nics.length === 1 ? nics[0] : linked.length === 1 ? linked[0] : undefined;
  if (only)
    return {
      status: 'True',
      reason: 'FromInventory',
      mac: only.mac,
      message: `the only ${nics.length === 1 ? '' : 'linked '}NIC is ${only.mac}`,
    };
  return {
    status: 'False',
    reason: 'Ambiguous',
    message: `set spec.bootMACAddress: the BMC reports ${nics.length} NICs (${nics.map((n) => n.mac).join(', ') || 'none'}) and metalbox cannot tell which one network-boots`,
  };
}

/** Reads the inventory into status; shared with the inline re-inspection of provisioned hosts. */
export async function inspect(ctx: HostContext): Promise<void> {
  const inventory = await ctx.bmc().inventory();
  ctx.status.hardware = toHardware(inventory);
  const decision = resolveBootMac(bootMac(ctx.host), ctx.status.hardware);
  if (decision.status === 'False' && ctx.condition(CONDITIONS.bootMACAddress)?.reason !== decision.reason) {
    ctx.event('Warning', 'BootMACAddress', decision.message);
  }
  ctx.setCondition({
    type: CONDITIONS.bootMACAddress,
    status: decision.status,
    reason: decision.reason,
    message: decision.message,
  });
  if (decision.reason === 'FromInventory') {
    // The user left the field empty and the inventory is unambiguous: fill it in, once.
    await ctx.updateObject((h) => {
      const spec = h.spec as { bootMACAddress?: string };
      if (spec.bootMACAddress) return false;
      spec.bootMACAddress = decision.mac;
      return true;
    });
    ctx.event(
      'Normal',
      'BootMACAddressRecorded',
      `spec.bootMACAddress set to ${decision.mac} from the inventory`,
    );
  }
  if (inventory.incomplete.length > 0) {
    ctx.event('Normal', 'InventoryIncomplete', `the BMC did not report: ${inventory.incomplete.join('; ')}`);
  }
  if (ctx.annotation(BMH_ANNOTATIONS.inspect) !== undefined) {
    // The inventory is stored before the request is consumed, so a crash never loses it.
    await ctx.persist();
    await ctx.removeAnnotation(BMH_ANNOTATIONS.inspect);
  }
}

export const inspecting: Handler = async (ctx) => {
  await inspect(ctx);
  const nics = ctx.status.hardware?.nics?.length ?? 0;
  return next(settledState(ctx.status), `inventory read (${nics} NICs)`);
};
