// provisioned: installed; the group answers boot-from-disk so a network boot never reinstalls.
// Keeps that answer in place, power as spec.online says, and takes reboot/inspect requests.
import { BMH_ANNOTATIONS } from '../../../crds/baremetalhost.ts';
import { coldStartForDiskBoot } from '../boot-device.ts';
import { childNames, ensureDiskAnswer } from '../children.ts';
import { type Handler, HostError, next, stay } from '../context.ts';
import { reconcilePower } from '../power.ts';
import { installRequested } from './available.ts';
import { inspect } from './inspecting.ts';

export const provisioned: Handler = async (ctx) => {
  const { spec } = ctx.host;
  if (!installRequested(spec))
    return next('deprovisioning', 'spec.profileRef removed: the install request was withdrawn');
  if (spec.bootTarget === 'rescue') return next('rescue', 'spec.bootTarget is rescue');
  const names = childNames(ctx.host);
  try {
    await ensureDiskAnswer(ctx);
  } catch (error) {
    if (error instanceof HostError) throw error;
    throw new HostError('boot configuration error', `keeping the disk answer: ${(error as Error).message}`);
  }
  const p = ctx.provisioning();
  p.bootTarget = 'disk';
  p.profile = names.disk;
  if (ctx.annotation(BMH_ANNOTATIONS.inspect) !== undefined && (spec.inspectionMode ?? 'bmc') === 'bmc') {
    // Out-of-band inventory does not disturb the running OS, so no state change is needed.
    await inspect(ctx);
  }
  if (await coldStartForDiskBoot(ctx)) return stay(ctx.env.config.waitPollSeconds * 1000);
  return stay(await reconcilePower(ctx));
};
