// registering: the BMC address parses, the credentials Secret exists and the BMC accepts it.
// BMC errors thrown here become `registration error` (the dispatcher maps them by state).
import { parseBmcAddress } from '../../../bmc/address.ts';
import { BMH_ANNOTATIONS } from '../../../crds/baremetalhost.ts';
import { type Handler, type HostContext, HostError, next } from '../context.ts';
import { observePower } from '../power.ts';
import { afterRegistration } from '../settle.ts';

/** Checks the Secret and the BMC's acceptance of it; records goodCredentials. */
export async function validateCredentials(ctx: HostContext): Promise<void> {
  const secret = await ctx.env.bmcs.secret(ctx.host);
  if (!secret) {
    throw new HostError(
      'registration error',
      `credentials Secret ${ctx.namespace}/${ctx.host.spec.bmc.credentialsName} (spec.bmc.credentialsName) not found`,
    );
  }
  await ctx.bmc().validateCredentials();
  ctx.status.goodCredentials = {
    name: ctx.host.spec.bmc.credentialsName,
    resourceVersion: secret.metadata.resourceVersion ?? '',
  };
}

export const registering: Handler = async (ctx) => {
  parseBmcAddress(ctx.host.spec.bmc.address, 'spec.bmc.address');
  await validateCredentials(ctx);
  await observePower(ctx);
  const needsInspection =
    (ctx.host.spec.inspectionMode ?? 'bmc') === 'bmc' &&
    (ctx.status.hardware === undefined || ctx.annotation(BMH_ANNOTATIONS.inspect) !== undefined);
  const history = ctx.status.operationHistory?.deprovision;
  const deprovisioning = history?.start !== undefined && history.end === undefined;
  return next(
    afterRegistration(ctx.status, needsInspection, deprovisioning),
    'the BMC accepted the credentials',
  );
};
