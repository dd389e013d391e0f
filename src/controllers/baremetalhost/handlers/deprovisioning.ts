// deprovisioning: the install request was withdrawn. Power off, remove the host's Matchbox
// children from every server (their finalizers), forget what was installed, then available.

import { deleteChildren } from '../children.ts';
import { type Handler, next, stay } from '../context.ts';
import { INSTALL_CONDITIONS } from '../hooks.ts';
import { CONDITIONS, observePower } from '../power.ts';

export const deprovisioning: Handler = async (ctx) => {
  const waitMs = ctx.env.config.waitPollSeconds * 1000;
  const p = ctx.provisioning();
  // Ends a running install attempt (the dispatcher tells the hooks).
  if (p.startedAt !== undefined) delete p.startedAt;
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
  delete p.bootTarget;
  delete p.profile;
  delete p.attempt;
  for (const type of [...Object.values(INSTALL_CONDITIONS), CONDITIONS.bootRequested])
    ctx.removeCondition(type);
  ctx.setCondition({
    type: CONDITIONS.provisioned,
    status: 'False',
    reason: 'Deprovisioned',
    message: 'powered off and Matchbox answers removed',
  });
  return next('available', 'powered off; Matchbox answers removed');
};
