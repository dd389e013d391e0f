// provisioning: one install attempt at a time. Attempt N: its number and start time are persisted
// first; the host's Matchbox children get the install answer (with the hooks' args for N); once
// they are synced everywhere the host is booted once from PXE; then the handler waits for the
// Installed condition (set by the OS-config side; ConfigDelivered alone is not enough). On success
// the group is switched to the disk answer before anything else. A timeout or InstallFailed ends
// the attempt; after maxProvisioningRetries the host stays in error until its spec changes.
import { timestamp } from '../../../runtime/resource.ts';
import { pointBmcAtDisk } from '../boot-device.ts';
import {
  childNames,
  diskProfileSpec,
  ensureDiskAnswer,
  ensureGroup,
  ensureProfile,
  hostArgs,
  installProfileSpec,
  isSynced,
  userProfile,
} from '../children.ts';
import { failed, type Handler, type HostContext, next, stay } from '../context.ts';
import { ConfigNotReadyError, INSTALL_CONDITIONS } from '../hooks.ts';
import { CONDITIONS, requestBoot } from '../power.ts';
import { installRequested } from './available.ts';

/** Ends the current attempt (tokens revoked by the hooks when the host leaves provisioning). */
function endAttempt(ctx: HostContext, message: string) {
  const p = ctx.status.provisioning;
  if (p) delete p.startedAt;
  ctx.setCondition({ type: CONDITIONS.provisioned, status: 'False', reason: 'AttemptFailed', message });
  return failed('provisioning error', message);
}

/** The disk answer first (so a reboot after the install never reinstalls), then provisioned. */
async function finishInstall(ctx: HostContext) {
  const names = childNames(ctx.host);
  await ensureDiskAnswer(ctx);
  const p = ctx.status.provisioning!;
  const attempt = p.attempt;
  delete p.startedAt;
  p.bootTarget = 'disk';
  p.profile = names.disk;
  ctx.setCondition({
    type: CONDITIONS.provisioned,
    status: 'True',
    reason: 'Installed',
    message: `installed by attempt ${attempt}; the group answers boot-from-disk`,
  });
  return next('provisioned', `install attempt ${attempt} finished`);
}

export const provisioning: Handler = async (ctx) => {
  const { spec } = ctx.host;
  const { config } = ctx.env;
  if (!installRequested(spec) || (spec.bootTarget ?? 'install') !== 'install') {
    return next(
      'deprovisioning',
      'the install request was withdrawn (spec.profileRef or spec.bootTarget changed)',
    );
  }
  const p = ctx.provisioning();
  const names = childNames(ctx.host);

  if (p.startedAt === undefined) {
    const attempt = (p.attempt ?? 0) + 1;
    if (attempt > config.maxProvisioningRetries) {
      return failed(
        'provisioning error',
        `all ${config.maxProvisioningRetries} install attempts failed; change the spec to try again`,
      );
    }
    p.attempt = attempt;
    p.startedAt = timestamp(ctx.now());
    p.bootTarget = 'install';
    p.profile = names.install;
    for (const type of [...Object.values(INSTALL_CONDITIONS), CONDITIONS.bootRequested])
      ctx.removeCondition(type);
    ctx.event(
      'Normal',
      'InstallAttempt',
      `install attempt ${attempt} of ${config.maxProvisioningRetries} started`,
    );
    await ctx.persist();
  }
  const attempt = p.attempt ?? 1;

  const timeoutS = spec.provisioningTimeoutSeconds ?? config.provisioningTimeoutSeconds;
  const elapsedS = (ctx.now().getTime() - Date.parse(p.startedAt ?? '')) / 1000;
  const installed = ctx.condition(INSTALL_CONDITIONS.installed);
  if (installed?.status === 'True') return finishInstall(ctx);
  const installFailed = ctx.condition(INSTALL_CONDITIONS.installFailed);
  if (installFailed?.status === 'True') {
    return endAttempt(ctx, `install attempt ${attempt} failed: ${installFailed.message}`);
  }
  if (elapsedS > timeoutS) {
    const delivered = ctx.condition(INSTALL_CONDITIONS.configDelivered)?.status === 'True';
    const seen = ctx.status.lastObservedBoot;
    const last = seen ? `; last sign of life: ${seen.phase} at ${seen.time}` : '';
    return endAttempt(
      ctx,
      `install attempt ${attempt} timed out after ${timeoutS} s (config ${delivered ? 'delivered' : 'not delivered'}${last})`,
    );
  }

  // The install answer for this attempt, and the disk answer ready for the switch afterwards.
  const base = await userProfile(ctx, spec.profileRef!.name, 'spec.profileRef', 'provisioning error');
  const waitMs = config.waitPollSeconds * 1000;
  let hookArgs: string[];
  try {
    hookArgs = await ctx.env.hooks().installArgs(ctx.host, attempt);
  } catch (error) {
    if (!(error instanceof ConfigNotReadyError)) throw error;
    return stay(waitMs, { reason: 'WaitingForConfig', message: error.message });
  }
  const extra = [...hostArgs(ctx.host, attempt), ...hookArgs];
  const install = await ensureProfile(ctx, names.install, installProfileSpec(ctx.host, base, extra));
  const disk = await ensureProfile(ctx, names.disk, diskProfileSpec(ctx.host));
  const group = await ensureGroup(ctx, names.install);
  const unsynced = [install, disk, group]
    .filter((o) => !isSynced(o))
    .map((o) => `${o.kind} ${o.metadata.name}`);
  if (unsynced.length > 0) {
    ctx.logger.debug({ unsynced }, 'waiting for Matchbox sync');
    return stay(waitMs, {
      reason: 'WaitingForMatchboxSync',
      message: `install attempt ${attempt}: waiting for ${unsynced.join(', ')} to be on every Matchbox server`,
    });
  }

  await requestBoot(ctx, 'Install', `install attempt ${attempt}`);
  await pointBmcAtDisk(ctx, attempt);
  const delivered = ctx.condition(INSTALL_CONDITIONS.configDelivered)?.status === 'True';
  return stay(Math.min(waitMs, Math.max(50, (timeoutS - elapsedS) * 1000)), {
    reason: 'WaitingForInstall',
    message: `install attempt ${attempt} of ${config.maxProvisioningRetries}: ${delivered ? 'config delivered; ' : ''}waiting for the installer to report Installed`,
  });
};
