// deleting: power off (unless detached, or the host was never registered, or its BMC is shared
// with another host), remove the Matchbox children and wait for their finalizers (unless detached:
// then let go at once), release the finalizer. An unreachable BMC is retried with backoff, visible
// in status (errorType/errorMessage/errorCount); the detached annotation lets the user let go.
import { BMH_ANNOTATIONS, BMH_FINALIZER } from '../../../crds/baremetalhost.ts';
import { removeFinalizer } from '../../../runtime/finalizers.ts';
import { deleteChildren } from '../children.ts';
import type { Handler, HostContext } from '../context.ts';
import { stay } from '../context.ts';
import { HOST_KIND } from '../kinds.ts';
import { CONDITIONS, observePower } from '../power.ts';

function mayPowerOff(ctx: HostContext): boolean {
  if (ctx.annotation(BMH_ANNOTATIONS.detached) !== undefined) return false;
  if (ctx.status.goodCredentials === undefined) return false;
  const conflict = ctx.condition(CONDITIONS.conflict);
  return !(conflict?.status === 'True' && conflict.reason === 'DuplicateBMCAddress');
}

export const deleting: Handler = async (ctx) => {
  const { env } = ctx;
  const waitMs = env.config.waitPollSeconds * 1000;
  const detached = ctx.annotation(BMH_ANNOTATIONS.detached) !== undefined;
  const p = ctx.status.provisioning;
  // Ends a running install attempt (the dispatcher tells the hooks).
  if (p?.startedAt !== undefined) delete p.startedAt;
  if (mayPowerOff(ctx)) {
    const state = await observePower(ctx);
    if (state !== 'off') {
      if (state !== 'poweringOff' && !env.power.settling(ctx.key, ctx.now().getTime())) {
        await ctx.bmc().powerOff();
        env.power.record(ctx.key, 'off', ctx.now().getTime());
        env.metrics.powerActions.inc({ action: 'off' });
        ctx.event('Normal', 'PowerOff', 'host deleted: powering off');
      }
      return stay(waitMs);
    }
  }
  const remaining = await deleteChildren(ctx);
  if (remaining > 0 && !detached) return stay(waitMs);
  await removeFinalizer(
    env.store,
    HOST_KIND,
    { namespace: ctx.namespace, name: ctx.host.metadata.name },
    BMH_FINALIZER,
  );
  await env.bmcs.forget(ctx.key);
  env.events.forget?.(ctx.host);
  env.power.forget(ctx.key);
  env.slots.release(ctx.key);
  env.retries.delete(ctx.key);
  return { kind: 'gone' };
};
