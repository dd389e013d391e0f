// error: an operation failed. Waits out the backoff (cut short when the spec or the credentials
// Secret changes), then returns to the operation's state. Install attempts that are used up keep
// the host here until its spec changes.
import type { HostErrorType, ProvisioningState } from '../../../crds/baremetalhost.ts';
import { type Handler, type HostContext, next, stay } from '../context.ts';
import { CONDITIONS } from '../power.ts';

const RETURN_STATE: Record<HostErrorType, ProvisioningState> = {
  'registration error': 'registering',
  'inspection error': 'inspecting',
  'provisioning error': 'provisioning',
  'deprovisioning error': 'deprovisioning',
  // Not raised from operation states today; registering re-checks the BMC, then settles.
  'power management error': 'registering',
  'boot configuration error': 'registering',
};

/** What an error's backoff depends on: a change to either ends the wait early. */
export async function retryInputs(ctx: HostContext): Promise<string> {
  const secret = await ctx.env.bmcs.secret(ctx.host);
  return `${ctx.generation}/${ctx.host.spec.bmc.credentialsName}@${secret?.metadata.resourceVersion ?? '-'}`;
}

export const error: Handler = async (ctx) => {
  const { status, env } = ctx;
  const type = status.errorType ?? 'registration error';
  const p = status.provisioning;
  if (
    type === 'provisioning error' &&
    p?.startedAt === undefined &&
    (p?.attempt ?? 0) >= env.config.maxProvisioningRetries
  ) {
    if (ctx.condition(CONDITIONS.provisioned)?.observedGeneration === ctx.generation) return stay();
    delete p!.attempt;
    return next('available', 'the spec changed after every install attempt had failed');
  }
  const retry = env.retries.get(ctx.key) ?? (await retryFromStatus(ctx));
  const waitMs = retry && retry.inputs === (await retryInputs(ctx)) ? retry.at - ctx.now().getTime() : 0;
  if (waitMs > 0) return stay(waitMs);
  return next(RETURN_STATE[type], `retrying after ${status.errorCount ?? 1} consecutive error(s)`);
};

/**
 * After a controller restart the in-memory backoff is gone; the retry time in status still holds.
 * A spec or credentials change made while no controller ran is not seen as one (nothing recorded
 * what the inputs were), so such a host waits out the backoff it had.
 */
async function retryFromStatus(ctx: HostContext): Promise<{ at: number; inputs: string } | undefined> {
  const at = Date.parse(ctx.status.errorRetryAt ?? '');
  if (Number.isNaN(at)) return undefined;
  const retry = { at, inputs: await retryInputs(ctx) };
  ctx.env.retries.set(ctx.key, retry);
  return retry;
}
