// bootFromDiskMethod bmc (the UEFI default, docs/boot-from-disk.md): no iPXE answer boots the disk
// of a network-first UEFI machine, so the BMC's boot device is set to the disk while the installer
// runs (real BMCs apply it at the installer's own reboot, as Ironic sets it during a deploy). Some
// BMCs apply a boot device only at a cold start (libvirt's emulators: a guest reboot keeps the
// running machine's boot order); when the installed OS does not report its disk boot in time,
// the host is powered off once and spec.online powers it on again.
import { bootFromDiskMethod } from './children.ts';
import type { HostContext } from './context.ts';
import { INSTALL_CONDITIONS } from './hooks.ts';
import { CONDITIONS } from './power.ts';

/** While provisioning, once the machine has its config: the disk becomes the BMC's boot device. */
export async function pointBmcAtDisk(ctx: HostContext, attempt: number): Promise<void> {
  if (bootFromDiskMethod(ctx.host) !== 'bmc') return;
  if (ctx.condition(INSTALL_CONDITIONS.configDelivered)?.status !== 'True') return;
  const current = ctx.condition(CONDITIONS.bootDevice);
  if (current?.status === 'True' && current.message.startsWith(`attempt ${attempt}:`)) return;
  const mode = ctx.host.spec.bootMode;
  const result = await ctx
    .bmc()
    .setBootOverride({ device: 'disk', enabled: 'Continuous', ...(mode ? { mode } : {}) });
  ctx.env.metrics.powerActions.inc({ action: 'disk-boot-device' });
  // BootOverride keeps what the BMC did with the install's one-time override; this says the rest.
  const read = `${result.readBack.enabled} ${result.readBack.target ?? result.readBack.device ?? '(no target)'}`;
  const message = `attempt ${attempt}: the BMC boots the disk once the installer reboots (bootFromDiskMethod bmc; it reads back ${read})`;
  ctx.setCondition({ type: CONDITIONS.bootDevice, status: 'True', reason: 'Disk', message });
  ctx.event('Normal', 'BootDeviceDisk', message);
}

/**
 * Provisioned with bmc, Talos reporting, and no disk boot reported within coldStartSeconds of the
 * install: one power-off (spec.online powers the host on again). Returns true when it acted.
 */
export async function coldStartForDiskBoot(ctx: HostContext): Promise<boolean> {
  if (bootFromDiskMethod(ctx.host) !== 'bmc' || !ctx.host.spec.talosConfigRef) return false;
  const device = ctx.condition(CONDITIONS.bootDevice);
  if (device?.status !== 'True' || device.reason !== 'Disk') return false;
  if (ctx.condition(INSTALL_CONDITIONS.bootedFromDisk)?.status === 'True') return false;
  const installed = ctx.condition(INSTALL_CONDITIONS.installed);
  const since = Date.parse(installed?.lastTransitionTime ?? '');
  const waitS = ctx.env.config.coldStartSeconds;
  if (installed?.status !== 'True' || (ctx.now().getTime() - since) / 1000 < waitS) return false;
  const message = `${device.message}; no disk boot reported ${waitS} s after the install: powered off once so the firmware starts cold with the disk as its boot device`;
  ctx.setCondition({ type: CONDITIONS.bootDevice, status: 'True', reason: 'DiskAfterColdStart', message });
  await ctx.persist();
  await ctx.bmc().powerOff();
  ctx.env.power.record(ctx.key, 'off', ctx.now().getTime());
  ctx.env.metrics.powerActions.inc({ action: 'off' });
  ctx.event('Normal', 'ColdStart', message);
  return true;
}
