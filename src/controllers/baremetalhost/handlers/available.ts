// available: registered (and inspected), nothing installed. Starts an install when asked for, or
// a rescue boot; otherwise keeps power as spec.online says.
import type { BareMetalHostSpec } from '../../../crds/baremetalhost.ts';
import { BMH_ANNOTATIONS } from '../../../crds/baremetalhost.ts';
import { type Handler, next, stay } from '../context.ts';
import { reconcilePower } from '../power.ts';

/** spec.profileRef is the install request: present means "this host should have an OS from it". */
export const installRequested = (spec: BareMetalHostSpec) => spec.profileRef !== undefined;

export const available: Handler = async (ctx) => {
  const { spec } = ctx.host;
  if (ctx.annotation(BMH_ANNOTATIONS.inspect) !== undefined && (spec.inspectionMode ?? 'bmc') === 'bmc') {
    return next('inspecting', `${BMH_ANNOTATIONS.inspect} asks for a new inspection`);
  }
  if (spec.bootTarget === 'rescue') return next('rescue', 'spec.bootTarget is rescue');
  if (installRequested(spec) && (spec.bootTarget ?? 'install') === 'install' && spec.online) {
    return next('provisioning', `install ${spec.profileRef?.name} requested`);
  }
  return stay(await reconcilePower(ctx));
};
