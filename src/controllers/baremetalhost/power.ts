// Declarative power in stable states (spec.online under spec.powerPolicy), the one-shot reboot
// annotation, and network-boot requests (boot-once + power cycle) that are never repeated after a
// crash: the request is written to status before the BMC is asked.

import type { BootOnceResult, PowerState } from '../../bmc/driver.ts';
import { BmcProtocolError, BmcUnsupportedError } from '../../bmc/errors.ts';
import { BMH_ANNOTATIONS } from '../../crds/baremetalhost.ts';
import type { HostContext } from './context.ts';

export const CONDITIONS = {
  /** False while observed power differs from spec.online (powerPolicy observe reports, never acts). */
  powerInSync: 'PowerInSync',
  /** The last network boot asked for: reason Install, Rescue or Disk; Unknown while being asked. */
  bootRequested: 'BootRequested',
  /** An identity conflict blocks every action on this host. */
  conflict: 'Conflict',
  /** The OS is installed and the host boots it from disk. */
  provisioned: 'Provisioned',
  /** bootFromDiskMethod bmc: the BMC's boot device is the disk (reason Disk or DiskAfterColdStart). */
  bootDevice: 'BootDevice',
  /** spec.bootMACAddress checked against the BMC inventory. */
  bootMACAddress: 'BootMACAddressKnown',
  /**
   * The boot source override as the BMC read it back after metalbox set it: True when the BMC did
   * what was asked; False reason Persistent when it keeps a Once override for every boot (the boot
   * lab's sushy, some real BMCs), so the override must be pointed at disk or cleared after the boot.
   */
  bootOverride: 'BootOverride',
  /** False reason BasicAuthFallback when the BMC's session login failed and Basic auth is used. */
  bmcAuthentication: 'BMCAuthentication',
} as const;

const isOn = (s: PowerState) => s === 'on' || s === 'poweringOn';
const isOff = (s: PowerState) => s === 'off' || s === 'poweringOff';

/** Reads power into status.poweredOn (transitional states count as where they are going). */
export async function observePower(ctx: HostContext): Promise<PowerState> {
  const state = await ctx.bmc().powerState();
  if (state !== 'unknown') ctx.status.poweredOn = isOn(state);
  return state;
}

/** Parses metalbox.io/reboot: {"mode":"soft"|"hard"}; an empty value means soft. */
export function parseRebootRequest(value: string): { mode: 'soft' | 'hard' } | { invalid: string } {
  if (value.trim() === '') return { mode: 'soft' };
  try {
    const parsed = JSON.parse(value) as { mode?: unknown };
    if (parsed && typeof parsed === 'object' && (parsed.mode === undefined || parsed.mode === 'soft'))
      return { mode: 'soft' };
    if (parsed && typeof parsed === 'object' && parsed.mode === 'hard') return { mode: 'hard' };
  } catch {
    // fall through
  }
  return { invalid: `${BMH_ANNOTATIONS.reboot} must be {"mode":"soft"} or {"mode":"hard"}` };
}

/**
 * Stable-state power: the reboot annotation first (one-shot, removed when done), then spec.online.
 * Returns the requeue delay: short while power is changing, the poll interval otherwise.
 */
export async function reconcilePower(ctx: HostContext): Promise<number> {
  const { config, power, metrics } = ctx.env;
  const nowMs = ctx.now().getTime();
  const _settleMs = config.powerSettleSeconds * 1000;
  const waitMs = config.waitPollSeconds * 1000;
  const pollMs = config.powerPollSeconds * 1000;
  const state = await observePower(ctx);

  const reboot = ctx.annotation(BMH_ANNOTATIONS.reboot);
  if (reboot !== undefined) {
    const request = parseRebootRequest(reboot);
    if ('invalid' in request) {
      ctx.event('Warning', 'RebootRejected', request.invalid);
    } else if (!ctx.host.spec.online) {
      ctx.event('Warning', 'RebootIgnored', 'reboot requested while spec.online is false; not powering on');
    } else {
      try {
        // A soft reboot on a BMC without a graceful reset is refused, not silently forced.
        await ctx.bmc().reboot({ mode: request.mode, allowForced: false });
      } catch (error) {
        if (!(error instanceof BmcUnsupportedError)) throw error;
        ctx.event('Warning', 'RebootRejected', `${error.message}; ask for {"mode":"hard"} to force it`);
        await ctx.removeAnnotation(BMH_ANNOTATIONS.reboot);
        return waitMs;
      }
      power.record(ctx.key, 'cycle', nowMs);
      metrics.powerActions.inc({ action: `reboot-${request.mode}` });
      ctx.event('Normal', 'Reboot', `${request.mode} reboot requested by ${BMH_ANNOTATIONS.reboot}`);
    }
    await ctx.removeAnnotation(BMH_ANNOTATIONS.reboot);
    return waitMs;
  }

  const want = ctx.host.spec.online;
  const inSync = want ? isOn(state) : isOff(state);
  const transitional = state === 'poweringOn' || state === 'poweringOff';
  const policy = ctx.host.spec.powerPolicy ?? 'enforce';
  const describe = `spec.online is ${want} but the host is ${state}`;
  if (inSync || state === 'unknown') {
    ctx.setCondition({
      type: CONDITIONS.powerInSync,
      status: state === 'unknown' ? 'Unknown' : 'True',
      reason: state === 'unknown' ? 'PowerUnknown' : 'InSync',
      message:
        state === 'unknown' ? 'the BMC reports no power state' : `host is ${state} as spec.online asks`,
    });
    return transitional ? waitMs : pollMs;
  }
  if (policy === 'observe') {
    if (ctx.condition(CONDITIONS.powerInSync)?.reason !== 'Drift') {
      ctx.event('Warning', 'PowerDrift', `${describe}; powerPolicy observe: not acting`);
    }
    ctx.setCondition({
      type: CONDITIONS.powerInSync,
      status: 'False',
      reason: 'Drift',
      message: `${describe}; powerPolicy is observe, so metalbox does not act`,
    });
    return pollMs;
  }
  if (power.settling(ctx.key, nowMs) || transitional) {
    ctx.setCondition({
      type: CONDITIONS.powerInSync,
      status: 'False',
      reason: 'Changing',
      message: `${describe}; a power change is under way`,
    });
    return waitMs;
  }
  if (want) {
    await ctx.bmc().powerOn();
    metrics.powerActions.inc({ action: 'on' });
  } else {
    // powerPolicy enforce: spec.online false is enforced, forced when the BMC has no graceful
    // shutdown; the driver's GracefulUnavailable notice becomes a Warning Event saying so.
    await ctx.bmc().powerOff({ graceful: true, timeoutMs: 60_000, allowForced: true });
    metrics.powerActions.inc({ action: 'off' });
  }
  power.record(ctx.key, want ? 'on' : 'off', nowMs);
  ctx.event(
    'Normal',
    want ? 'PowerOn' : 'PowerOff',
    `${describe}; powerPolicy enforce: powering ${want ? 'on' : 'off'}`,
  );
  ctx.setCondition({
    type: CONDITIONS.powerInSync,
    status: 'False',
    reason: 'Changing',
    message: `${describe}; powering ${want ? 'on' : 'off'}`,
  });
  return waitMs;
}

export type BootPurpose = 'Install' | 'Rescue' | 'Disk' | 'Clean';

/**
 * Boots the host once into `purpose` (network boot for Install/Rescue, disk for Disk) by a power
 * cycle, or a power-on when it is off. Done at most once per request: the request is persisted as
 * BootRequested=Unknown first; after a crash in between, a host found powered on is taken as booted.
 * Returns true once the boot was asked for.
 */
export async function requestBoot(ctx: HostContext, purpose: BootPurpose, why: string): Promise<boolean> {
  const current = ctx.condition(CONDITIONS.bootRequested);
  if (current?.reason === purpose && current.status === 'True') return true;
  const bmc = ctx.bmc();
  if (current?.reason === purpose && current.status === 'Unknown') {
    const state = await observePower(ctx);
    if (isOn(state)) {
      ctx.setCondition({
        type: CONDITIONS.bootRequested,
        status: 'True',
        reason: purpose,
        message: `${why} (the host was found powered on after the request was interrupted; not cycling it again)`,
      });
      return true;
    }
  }
  ctx.setCondition({
    type: CONDITIONS.bootRequested,
    status: 'Unknown',
    reason: purpose,
    message: `${why}: asking the BMC`,
  });
  await ctx.persist();
  const device = purpose === 'Disk' ? 'disk' : 'pxe';
  // The boot mode only when spec.bootMode asks; the driver holds the one rule (never change it unasked).
  const mode = ctx.host.spec.bootMode;
  const result = await bmc.setBootOnce({ device, ...(mode ? { mode } : {}) });
  ctx.env.metrics.powerActions.inc({ action: `${device}-once` });
  recordBootOverride(ctx, result);
  if (!result.honoured) {
    ctx.setCondition({
      type: CONDITIONS.bootRequested,
      status: 'False',
      reason: purpose,
      message: `${why}: the BMC did not keep the boot override; will ask again`,
    });
    throw new BmcProtocolError(
      bmc.address,
      `boot override ${device === 'pxe' ? 'Pxe' : 'Hdd'} was accepted but reads back ${result.readBack.enabled} ${result.readBack.target ?? '(no target)'}; not power cycling into the wrong device`,
    );
  }
  const state = await observePower(ctx);
  let how: string;
  if (isOff(state) || state === 'unknown') {
    await bmc.powerOn();
    how = 'power on';
    ctx.env.metrics.powerActions.inc({ action: 'on' });
  } else {
    await bmc.reboot({ mode: 'hard' });
    how = 'power cycle';
    ctx.env.metrics.powerActions.inc({ action: 'reboot-hard' });
  }
  ctx.env.power.record(ctx.key, 'cycle', ctx.now().getTime());
  ctx.status.poweredOn = true;
  const message = `${why}: boot-once ${device === 'pxe' ? 'PXE' : 'disk'}, ${how}`;
  ctx.setCondition({ type: CONDITIONS.bootRequested, status: 'True', reason: purpose, message });
  ctx.event('Normal', device === 'pxe' ? 'NetworkBoot' : 'DiskBoot', message);
  return true;
}

/** Records what the BMC really did with a boot override (condition BootOverride). */
export function recordBootOverride(ctx: HostContext, result: BootOnceResult): void {
  const { readBack, requested } = result;
  const read = `${readBack.enabled} ${readBack.target ?? '(no target)'}${readBack.mode ? ` (${readBack.mode})` : ''}`;
  const asked = `${requested.enabled} ${requested.device}`;
  if (!result.honoured) {
    ctx.setCondition({
      type: CONDITIONS.bootOverride,
      status: 'False',
      reason: 'NotHonoured',
      message: `asked for ${asked}; the BMC reads back ${read}`,
    });
  } else if (result.persistent) {
    ctx.setCondition({
      type: CONDITIONS.bootOverride,
      status: 'False',
      reason: 'Persistent',
      message: `asked for ${asked}; the BMC reads back ${read}: every boot goes there until it is changed`,
    });
  } else {
    ctx.setCondition({
      type: CONDITIONS.bootOverride,
      status: 'True',
      reason: 'AsRequested',
      message: `the BMC reads back ${read}`,
    });
  }
}

/**
 * Turns what the host's BMC driver said since the last reconcile into Warning Events (once each, as
 * the driver says each once) and, for the Basic fallback, a condition message that stays visible.
 */
export function recordBmcNotices(ctx: HostContext): void {
  for (const notice of ctx.env.bmcs.takeNotices(ctx.key)) {
    ctx.event('Warning', notice.code, notice.message);
    if (notice.code === 'BasicAuthFallback') {
      ctx.setCondition({
        type: CONDITIONS.bmcAuthentication,
        status: 'False',
        reason: 'BasicAuthFallback',
        message: notice.message,
      });
    }
  }
}
