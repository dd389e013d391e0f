// A host's GitOps health (Ready / Reconciling / Stalled, see runtime/health.ts), decided once per
// reconcile by the dispatcher from the status it is about to write and what this reconcile did.
// "Ready" is the state the spec asks for: provisioned when it asks for an install (profileRef,
// bootTarget install), booted into rescue for bootTarget rescue, available otherwise; with power
// as spec.online says. The Talos node's own readiness is INSTALL_CONDITIONS.ready (TalosReady).
import { BMH_ANNOTATIONS, type ProvisioningState } from '../../crds/baremetalhost.ts';
import { type Health, reasonOf, withHealth } from '../../runtime/health.ts';
import type { HandlerResult, HostContext } from './context.ts';
import { CONFIG_CONDITIONS } from './hooks.ts';
import { CONDITIONS } from './power.ts';

/** Stalled reasons that come from a failed step and last while its error does. */
const ERROR_STALLS = new Set(['CredentialsRefused', 'CredentialsInvalid', 'InvalidBMCAddress']);

const STEP: Partial<Record<ProvisioningState, { reason: string; message: string }>> = {
  registering: { reason: 'Registering', message: 'checking the BMC address and credentials' },
  inspecting: { reason: 'Inspecting', message: 'reading the hardware inventory from the BMC' },
  provisioning: { reason: 'Provisioning', message: 'installing the OS' },
  deprovisioning: { reason: 'Deprovisioning', message: 'powering off and removing the Matchbox answers' },
  deleting: { reason: 'Deleting', message: 'powering off and removing the Matchbox answers before release' },
};

/** Where the spec wants the host to end up. */
function target(ctx: HostContext): 'provisioned' | 'rescue' | 'available' {
  const { spec } = ctx.host;
  if (spec.bootTarget === 'rescue') return 'rescue';
  if (spec.profileRef === undefined) return 'available';
  if ((spec.bootTarget ?? 'install') === 'install') return 'provisioned';
  // bootTarget disk: boot what is installed; a host never installed has nothing to boot.
  return ctx.state === 'available' ? 'available' : 'provisioned';
}

export function hostHealth(ctx: HostContext, result: HandlerResult): Health {
  const s = ctx.status;
  const state = ctx.state;
  if (ctx.annotation(BMH_ANNOTATIONS.detached) !== undefined && state !== 'deleting') {
    return {
      state: 'waiting',
      reason: 'Detached',
      message: `${BMH_ANNOTATIONS.detached} is set: metalbox does not power, boot or change this host`,
    };
  }
  const conflict = ctx.condition(CONDITIONS.conflict);
  if (conflict?.status === 'True' && state !== 'deleting') {
    return { state: 'stalled', reason: 'Conflict', message: conflict.message };
  }
  if (s.errorType !== undefined && state !== 'deleting') {
    const p = s.provisioning;
    const max = ctx.env.config.maxProvisioningRetries;
    if (
      state === 'error' &&
      s.errorType === 'provisioning error' &&
      p?.startedAt === undefined &&
      (p?.attempt ?? 0) >= max
    ) {
      return { state: 'stalled', reason: 'RetriesExhausted', message: s.errorMessage ?? '' };
    }
    const previous = ctx.condition('Stalled');
    if (result.kind === 'error' && result.stall) {
      return { state: 'stalled', reason: result.stall, message: s.errorMessage ?? result.message };
    }
    // Waiting out the backoff of a failure that needs a person: still stalled.
    if (result.kind !== 'error' && previous?.status === 'True' && ERROR_STALLS.has(previous.reason)) {
      return { state: 'stalled', reason: previous.reason, message: s.errorMessage ?? previous.message };
    }
    const retry = s.errorRetryAt ? `; retried at ${s.errorRetryAt}` : '';
    return {
      state: 'reconciling',
      reason: reasonOf(s.errorType),
      message: `${s.errorMessage ?? s.errorType}${retry}`,
    };
  }
  // An install waits for a config that does not render: only a change to its inputs helps.
  const rendered = ctx.condition(CONFIG_CONDITIONS.rendered);
  if (state === 'provisioning' && rendered?.status === 'False') {
    return { state: 'stalled', reason: rendered.reason, message: rendered.message };
  }
  if (result.kind === 'stay' && result.wait) return { state: 'reconciling', ...result.wait };
  if (state === 'provisioning' && s.operationalStatus === 'delayed') {
    return {
      state: 'reconciling',
      reason: 'Delayed',
      message: `${ctx.env.slots.limit} hosts are provisioning (the provisioning limit); waiting for a slot`,
    };
  }
  const want = target(ctx);
  const step = state ? STEP[state] : undefined;
  if (step) return { state: 'reconciling', ...step };
  if (state !== want || (want === 'rescue' && s.provisioning?.bootTarget !== 'rescue')) {
    if (want === 'provisioned' && state === 'available' && !ctx.host.spec.online) {
      return {
        state: 'waiting',
        reason: 'WaitingForOnline',
        message: 'an install is asked for; it starts once spec.online is true',
      };
    }
    return {
      state: 'reconciling',
      reason: want === 'available' ? 'Deprovisioning' : want === 'rescue' ? 'Rescue' : 'Provisioning',
      message: `${state ?? 'new'} → ${want}`,
    };
  }
  const power = ctx.condition(CONDITIONS.powerInSync);
  if (power?.status === 'False') {
    return power.reason === 'Drift'
      ? { state: 'waiting', reason: 'PowerDrift', message: power.message }
      : { state: 'reconciling', reason: 'PowerChanging', message: power.message };
  }
  const ready: Record<typeof want, string> = {
    provisioned: 'installed; booting from disk',
    rescue: `booted into rescue (${s.provisioning?.profile ?? ''})`,
    available: 'registered; nothing installed',
  };
  return { state: 'ready', reason: reasonOf(want), message: ready[want] };
}

/** Writes the verdict into the status draft (observedGeneration = the host's generation). */
export function setHostHealth(ctx: HostContext, result: HandlerResult): void {
  ctx.status.conditions = withHealth(
    ctx.status.conditions,
    hostHealth(ctx, result),
    ctx.generation,
    ctx.now(),
  );
}
