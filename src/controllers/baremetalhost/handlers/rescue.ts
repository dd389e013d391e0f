// rescue: spec.bootTarget rescue points the host's group at rescueProfileRef and boots it once
// from PXE; switching bootTarget back restores the disk answer and reboots into the installed OS
// (a host never installed is deprovisioned instead). No hand edit of groups, no manual power.
import { childNames, ensureDiskAnswer, ensureGroup, isSynced, userProfile } from '../children.ts';
import { type Handler, next, stay } from '../context.ts';
import { reconcilePower, requestBoot } from '../power.ts';
import { isProvisioned } from '../settle.ts';

export const rescue: Handler = async (ctx) => {
  const { spec } = ctx.host;
  const waitMs = ctx.env.config.waitPollSeconds * 1000;
  const p = ctx.provisioning();

  if (spec.bootTarget !== 'rescue') {
    if (!isProvisioned(ctx.status)) return next('deprovisioning', 'left rescue; nothing is installed');
    const names = childNames(ctx.host);
    if (!(await ensureDiskAnswer(ctx))) return stay(waitMs);
    await requestBoot(ctx, 'Disk', 'leaving rescue');
    p.bootTarget = 'disk';
    p.profile = names.disk;
    return next('provisioned', 'spec.bootTarget is no longer rescue: booted the installed OS');
  }

  const name = spec.rescueProfileRef?.name ?? '';
  const profile = await userProfile(ctx, name, 'spec.rescueProfileRef', 'boot configuration error');
  const group = await ensureGroup(ctx, name);
  if (p.bootTarget !== 'rescue' || p.profile !== name) {
    if (!isSynced(profile) || !isSynced(group)) return stay(waitMs);
    await requestBoot(ctx, 'Rescue', `rescue with ${name}`);
    p.bootTarget = 'rescue';
    p.profile = name;
    return stay(waitMs);
  }
  return stay(await reconcilePower(ctx));
};
