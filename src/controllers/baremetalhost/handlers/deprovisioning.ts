// deprovisioning: the install request was withdrawn. An installed host is cleaned first (unless
// spec.automatedCleaningMode is disabled): its install answer is booted once with the OS's own wipe
// (the hooks' cleaning args; Talos: talos.experimental.wipe=system) until the machine reports the
// wipe (condition Cleaned), so a later power-on boots neither the old OS nor its secrets. Then power
// off, remove the host's Matchbox children from every server (their finalizers), forget what was
// installed, and the host is available.

import type { MatchboxProfile } from '../../../crds/matchboxprofile.ts';
import { isNotFound } from '../../../runtime/errors.ts';
import type { Resource } from '../../../runtime/resource.ts';
import { childNames, deleteChildren, ensureGroup, ensureProfile, isSynced, mergeArgs } from '../children.ts';
import { type Handler, type HandlerResult, type HostContext, next, stay } from '../context.ts';
import { INSTALL_CONDITIONS } from '../hooks.ts';
import { PROFILE_KIND } from '../kinds.ts';
import { CONDITIONS, observePower, requestBoot } from '../power.ts';
import { isProvisioned } from '../settle.ts';

/** Kernel args of an install that cleaning replaces (the wipe boot fetches no machine config). */
const INSTALL_ONLY = /^(talos\.config|talos\.config\.early|talos\.events\.sink|metalbox\.attempt)=/;

/** Runs the cleaning boot; undefined once the host is clean (or needs no cleaning). */
async function clean(ctx: HostContext): Promise<HandlerResult | undefined> {
  const { spec } = ctx.host;
  const waitMs = ctx.env.config.waitPollSeconds * 1000;
  if ((spec.automatedCleaningMode ?? 'metadata') === 'disabled' || !isProvisioned(ctx.status))
    return undefined;
  const cleaned = ctx.condition(INSTALL_CONDITIONS.cleaned);
  if (cleaned?.status === 'True' || cleaned?.reason === 'TimedOut' || cleaned?.reason === 'NotSupported')
    return undefined;
  const hooks = ctx.env.hooks();
  const args = await hooks.cleaningArgs?.(ctx.host);
  const names = childNames(ctx.host);
  const installed =
    ctx.env.profiles.get({ namespace: ctx.namespace, name: names.install }) ??
    (await ctx.env.store
      .get<MatchboxProfile & Resource>(PROFILE_KIND, { namespace: ctx.namespace, name: names.install })
      .catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error))));
  if (!args || !installed?.spec.kernel) {
    ctx.setCondition({
      type: INSTALL_CONDITIONS.cleaned,
      status: 'False',
      reason: 'NotSupported',
      message: !args
        ? 'the OS config delivery of this host cannot clean it (no talosConfigRef): powered off without a wipe'
        : `MatchboxProfile ${names.install} (what was installed) is gone: powered off without a wipe`,
    });
    ctx.event('Warning', 'CleaningSkipped', ctx.condition(INSTALL_CONDITIONS.cleaned)!.message);
    return undefined;
  }
  if (cleaned === undefined) {
    ctx.setCondition({
      type: INSTALL_CONDITIONS.cleaned,
      status: 'Unknown',
      reason: 'Wiping',
      message: 'booting the install image once with the OS wipe',
    });
    ctx.removeCondition(CONDITIONS.bootRequested);
    ctx.event('Normal', 'Cleaning', 'deprovisioning: booting the install image once to wipe the disk');
    await ctx.persist();
  }
  const timeoutS = spec.provisioningTimeoutSeconds ?? ctx.env.config.provisioningTimeoutSeconds;
  const since = Date.parse(ctx.condition(INSTALL_CONDITIONS.cleaned)?.lastTransitionTime ?? '');
  if ((ctx.now().getTime() - since) / 1000 > timeoutS) {
    const message = `the machine did not report its wipe within ${timeoutS} s: powering off; its disk may still hold the old OS`;
    ctx.setCondition({ type: INSTALL_CONDITIONS.cleaned, status: 'False', reason: 'TimedOut', message });
    ctx.event('Warning', 'CleaningFailed', message);
    await hooks.cleaningEnded?.(ctx.host);
    return undefined;
  }
  // The install profile, with the wipe instead of the install; the group points at it.
  const base = installed.spec;
  const profile = await ensureProfile(ctx, names.install, {
    ...base,
    args: mergeArgs(
      (base.args ?? []).filter((a) => !INSTALL_ONLY.test(a)),
      args,
    ),
  });
  const group = await ensureGroup(ctx, names.install);
  if (!isSynced(profile) || !isSynced(group)) return stay(waitMs);
  await requestBoot(ctx, 'Clean', 'deprovisioning: wipe the installed disk');
  return stay(waitMs);
}

export const deprovisioning: Handler = async (ctx) => {
  const waitMs = ctx.env.config.waitPollSeconds * 1000;
  const p = ctx.provisioning();
  // Ends a running install attempt (the dispatcher tells the hooks).
  if (p.startedAt !== undefined) delete p.startedAt;
  const cleaning = await clean(ctx);
  if (cleaning) return cleaning;
  const state = await observePower(ctx);
  if (state !== 'off') {
    if (state !== 'poweringOff' && !ctx.env.power.settling(ctx.key, ctx.now().getTime())) {
      await ctx.bmc().powerOff();
      ctx.env.power.record(ctx.key, 'off', ctx.now().getTime());
      ctx.env.metrics.powerActions.inc({ action: 'off' });
      ctx.event('Normal', 'PowerOff', 'deprovisioning: powering off');
    }
    return stay(waitMs);
  }
  if ((await deleteChildren(ctx)) > 0) return stay(waitMs);
  if (ctx.condition(INSTALL_CONDITIONS.cleaned)?.status === 'True')
    await ctx.env.hooks().cleaningEnded?.(ctx.host);
  delete p.bootTarget;
  delete p.profile;
  delete p.attempt;
  const wiped = ctx.condition(INSTALL_CONDITIONS.cleaned)?.status === 'True';
  for (const type of [...Object.values(INSTALL_CONDITIONS), CONDITIONS.bootRequested])
    ctx.removeCondition(type);
  ctx.setCondition({
    type: CONDITIONS.provisioned,
    status: 'False',
    reason: 'Deprovisioned',
    message: `${wiped ? 'disk wiped, ' : ''}powered off and Matchbox answers removed`,
  });
  return next('available', `${wiped ? 'disk wiped; ' : ''}powered off; Matchbox answers removed`);
};
