// The BareMetalHost state machine: the ONE transition table, one handler per state, and the
// dispatcher. The dispatcher applies the cross-cutting checks in a fixed order, calls the state's
// handler, refuses any transition the table does not list, and does the state-change bookkeeping
// (operationHistory, Events, metrics, error backoff, status write) once, here. Handlers only return
// what should happen next. docs/baremetalhost-states.md is generated from this file.
import { BmcAddressError, BmcAuthError, BmcCredentialsError, BmcError } from '../../bmc/errors.ts';
import {
  type BareMetalHost,
  BMH_ANNOTATIONS,
  BMH_FINALIZER,
  type HostErrorType,
  type ProvisioningState,
} from '../../crds/baremetalhost.ts';
import { backoffDelay } from '../../runtime/backoff.ts';
import type { ReconcileResult } from '../../runtime/controller.ts';
import { InvalidError, isNotFound } from '../../runtime/errors.ts';
import { hasFinalizer } from '../../runtime/finalizers.ts';
import { type Logger, withFields } from '../../runtime/logger.ts';
import { type ObjectRef, type Resource, timestamp } from '../../runtime/resource.ts';
import { hostKey } from './bmc.ts';
import {
  failed,
  type Handler,
  type HandlerResult,
  HostContext,
  type HostEnv,
  HostError,
  stay,
} from './context.ts';
import { available } from './handlers/available.ts';
import { deleting } from './handlers/deleting.ts';
import { deprovisioning } from './handlers/deprovisioning.ts';
import { error, retryInputs } from './handlers/error.ts';
import { inspecting } from './handlers/inspecting.ts';
import { provisioned } from './handlers/provisioned.ts';
import { provisioning } from './handlers/provisioning.ts';
import { registering, validateCredentials } from './handlers/registering.ts';
import { rescue } from './handlers/rescue.ts';
import { setHostHealth } from './health.ts';
import { bootMac, findConflicts } from './identity.ts';
import { HOST_KIND } from './kinds.ts';
import { CONDITIONS, recordBmcNotices } from './power.ts';
import { holdsSlot } from './slots.ts';

/** Where a new host starts. */
export const INITIAL_STATE: ProvisioningState = 'registering';

/** The transition table: from → the states a handler (or a check) may move it to. */
export const TRANSITIONS: Record<ProvisioningState, readonly ProvisioningState[]> = {
  registering: [
    'inspecting',
    'available',
    'provisioning',
    'provisioned',
    'deprovisioning',
    'rescue',
    'error',
    'deleting',
  ],
  inspecting: ['available', 'provisioned', 'rescue', 'error', 'deleting'],
  available: ['inspecting', 'provisioning', 'rescue', 'deleting'],
  provisioning: ['provisioned', 'deprovisioning', 'error', 'deleting'],
  provisioned: ['deprovisioning', 'rescue', 'deleting'],
  rescue: ['provisioned', 'deprovisioning', 'deleting'],
  deprovisioning: ['available', 'error', 'deleting'],
  error: ['registering', 'inspecting', 'provisioning', 'deprovisioning', 'available', 'deleting'],
  deleting: [],
};

/** One line per state, for the docs. */
export const STATE_DESCRIPTIONS: Record<ProvisioningState, string> = {
  registering: 'Check the BMC address, the credentials Secret and that the BMC accepts it.',
  inspecting: 'Read the BMC inventory into status.hardware; check the boot MAC against it.',
  available:
    'Registered, nothing installed; power follows spec.online. Starts an install or a rescue boot when asked.',
  provisioning:
    'One install attempt at a time: Matchbox children with the install answer, synced → boot-once PXE + power cycle, wait for Installed; timeout and retry limit.',
  provisioned:
    'Installed; the group answers boot-from-disk (install-loop prevention); power follows spec.online.',
  rescue:
    'The group answers rescueProfileRef; booted once from PXE. Leaving restores the disk answer and reboots.',
  deprovisioning:
    'Wipe an installed host (one boot of its install image with the OS wipe, unless automatedCleaningMode is disabled), power off, remove the Matchbox children from every server, forget the install.',
  error:
    'An operation failed: errorType/errorMessage/errorCount; retried after exponential backoff with jitter.',
  deleting: 'Power off (unless detached), remove Matchbox children, release the finalizer.',
};

export const HANDLERS: Record<ProvisioningState, Handler> = {
  registering,
  inspecting,
  available,
  provisioning,
  provisioned,
  rescue,
  deprovisioning,
  error,
  deleting,
};

/** States that run an operation: a failure there moves the host to `error`. */
const OPERATIONS: Partial<Record<ProvisioningState, 'register' | 'inspect' | 'provision' | 'deprovision'>> = {
  registering: 'register',
  inspecting: 'inspect',
  provisioning: 'provision',
  deprovisioning: 'deprovision',
};

/** The error type of a BMC failure, by the state it happened in. */
const DEFAULT_ERROR_TYPE: Record<ProvisioningState, HostErrorType> = {
  registering: 'registration error',
  inspecting: 'inspection error',
  available: 'power management error',
  provisioning: 'provisioning error',
  provisioned: 'power management error',
  rescue: 'boot configuration error',
  deprovisioning: 'deprovisioning error',
  error: 'registration error',
  deleting: 'power management error',
};

const EVENT_REASON: Record<ProvisioningState, string> = {
  registering: 'Registering',
  inspecting: 'Inspecting',
  available: 'Available',
  provisioning: 'Provisioning',
  provisioned: 'Provisioned',
  rescue: 'Rescue',
  deprovisioning: 'Deprovisioning',
  error: 'Error',
  deleting: 'Deleting',
};

export function isAllowed(from: ProvisioningState | undefined, to: ProvisioningState): boolean {
  if (from === undefined) return to === INITIAL_STATE || to === 'deleting';
  return TRANSITIONS[from].includes(to);
}

/** A transition the table does not list: a bug in a handler, never written to the host. */
export class RefusedTransitionError extends Error {
  constructor(from: ProvisioningState | undefined, to: ProvisioningState) {
    super(`refused transition ${from ?? '(new)'} → ${to}: not in the transition table`);
    this.name = 'RefusedTransitionError';
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-cutting checks, in the order they run. Each returns undefined (go on) or how to stop.

type CheckOutcome = undefined | { result: HandlerResult; write: boolean };
interface Check {
  name: string;
  description: string;
  run(ctx: HostContext): Promise<CheckOutcome>;
}

const STOP_NO_WRITE: CheckOutcome = { result: stay(), write: false };

export const CHECKS: readonly Check[] = [
  {
    name: 'paused',
    description: `${BMH_ANNOTATIONS.paused} set: nothing is done and nothing is written.`,
    async run(ctx) {
      return ctx.annotation(BMH_ANNOTATIONS.paused) !== undefined ? STOP_NO_WRITE : undefined;
    },
  },
  {
    name: 'deleting',
    description: 'deletionTimestamp set: any state goes to deleting. Otherwise the finalizer is added first.',
    async run(ctx) {
      if (ctx.host.metadata.deletionTimestamp) {
        if (!hasFinalizer(ctx.host, BMH_FINALIZER)) return STOP_NO_WRITE;
        if (ctx.state !== 'deleting') enter(ctx, ctx.state, 'deleting', 'the host was deleted');
        return undefined;
      }
      if (!hasFinalizer(ctx.host, BMH_FINALIZER)) {
        await ctx.updateObject((h) => {
          if (hasFinalizer(h, BMH_FINALIZER)) return false;
          h.metadata.finalizers = [...(h.metadata.finalizers ?? []), BMH_FINALIZER];
          return true;
        });
      }
      if (ctx.state === undefined) enter(ctx, undefined, INITIAL_STATE, 'new host');
      return undefined;
    },
  },
  {
    name: 'detached',
    description: `${BMH_ANNOTATIONS.detached} set: no BMC action, no Matchbox change; status says detached. Deletion lets go without powering off.`,
    async run(ctx) {
      if (ctx.annotation(BMH_ANNOTATIONS.detached) === undefined || ctx.state === 'deleting')
        return undefined;
      return { result: stay(), write: true };
    },
  },
  {
    name: 'identity conflicts',
    description:
      'Another host with the same boot MAC or BMC, or a foreign MatchboxGroup selecting the MAC: Conflict=True, nothing is done.',
    async run(ctx) {
      if (ctx.state === 'deleting') return undefined;
      const { env } = ctx;
      const conflicts = findConflicts(
        ctx.host,
        env.index.sharingIdentity(ctx.host),
        env.index.groupsSelecting(bootMac(ctx.host)),
      );
      if (conflicts.length === 0) {
        if (ctx.condition(CONDITIONS.conflict)?.status === 'True') {
          ctx.event('Normal', 'ConflictResolved', 'no other host or group claims this identity any more');
        }
        if (ctx.condition(CONDITIONS.conflict)) {
          ctx.setCondition({
            type: CONDITIONS.conflict,
            status: 'False',
            reason: 'NoConflict',
            message: 'identity is unique',
          });
        }
        return undefined;
      }
      const message = conflicts.map((c) => c.message).join('; ');
      const previous = ctx.condition(CONDITIONS.conflict);
      if (previous?.status !== 'True' || previous.message !== message)
        ctx.event('Warning', 'Conflict', message);
      ctx.setCondition({ type: CONDITIONS.conflict, status: 'True', reason: conflicts[0]!.reason, message });
      return { result: stay(), write: true };
    },
  },
  {
    name: 'credentials changed',
    description:
      'The credentials Secret changed (or went) since the BMC last accepted it: validate again before anything else.',
    async run(ctx) {
      const state = ctx.state;
      const good = ctx.status.goodCredentials;
      if (
        !good ||
        state === undefined ||
        state === 'registering' ||
        state === 'error' ||
        state === 'deleting'
      )
        return undefined;
      const secret = await ctx.env.bmcs.secret(ctx.host);
      const current = secret?.metadata.resourceVersion;
      if (secret && good.name === ctx.host.spec.bmc.credentialsName && good.resourceVersion === current)
        return undefined;
      try {
        await validateCredentials(ctx);
      } catch (e) {
        if (e instanceof HostError || e instanceof BmcError)
          return {
            result: failed('registration error', e.message, e instanceof BmcError ? stallOf(e) : undefined),
            write: true,
          };
        throw e;
      }
      ctx.event('Normal', 'CredentialsAccepted', 'the BMC accepted the changed credentials Secret');
      return undefined;
    },
  },
  {
    name: 'provisioning capacity',
    description:
      'In provisioning without a running attempt and the provisioning limit reached: operationalStatus delayed, retry later.',
    async run(ctx) {
      if (ctx.state !== 'provisioning' || ctx.env.slots.claim(ctx.host)) return undefined;
      if (ctx.status.operationalStatus !== 'delayed') {
        ctx.afterWrite.push(() => ctx.env.metrics.delayed.inc());
        ctx.afterWrite.push(() =>
          ctx.event(
            'Normal',
            'Delayed',
            `${ctx.env.slots.limit} hosts are provisioning (the provisioning limit); waiting for a slot`,
          ),
        );
      }
      ctx.status.operationalStatus = 'delayed';
      const base = ctx.env.config.delayedRetrySeconds * 1000;
      return { result: stay(base * (0.5 + Math.random())), write: true };
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Bookkeeping, done here and nowhere else.

/** Enters `to`: status state, operationHistory, Event, metric, log. */
function enter(
  ctx: HostContext,
  from: ProvisioningState | undefined,
  to: ProvisioningState,
  reason: string,
): void {
  if (!isAllowed(from, to)) throw new RefusedTransitionError(from, to);
  const now = ctx.now();
  const time = timestamp(now);
  const p = ctx.provisioning();
  p.state = to;
  if (!ctx.status.operationHistory) ctx.status.operationHistory = {};
  const history = ctx.status.operationHistory;
  const ended = from === undefined ? undefined : OPERATIONS[from];
  if (ended && to !== 'error' && to !== 'deleting') {
    const op = history[ended] ?? {};
    history[ended] = op;
    op.end = time;
    const start = op.start;
    if (start) {
      const seconds = (now.getTime() - Date.parse(start)) / 1000;
      ctx.afterWrite.push(() => ctx.env.metrics.operationDuration.observe({ operation: ended }, seconds));
    }
  }
  const started = OPERATIONS[to];
  if (started && from !== 'error') history[started] = { start: time };
  if (to === 'provisioning' && from !== 'error') {
    delete p.attempt;
    delete p.startedAt;
  }
  ctx.afterWrite.push(() => {
    ctx.env.metrics.transitions.inc({ from: from ?? 'none', to });
    ctx.event(to === 'error' ? 'Warning' : 'Normal', EVENT_REASON[to], `${from ?? 'new'} → ${to}: ${reason}`);
    ctx.logger.info({ from: from ?? 'none', to, reason }, 'host state change');
  });
}

/** Records a failed step: error fields, metric, backoff; operation states move to `error`. */
async function recordError(
  ctx: HostContext,
  from: ProvisioningState,
  type: HostErrorType,
  message: string,
): Promise<number> {
  const { env } = ctx;
  const s = ctx.status;
  s.errorType = type;
  s.errorMessage = message.length > 4096 ? `${message.slice(0, 4093)}...` : message;
  s.errorCount = (s.errorCount ?? 0) + 1;
  ctx.afterWrite.push(() => env.metrics.errors.inc({ type }));
  const { baseSeconds, capSeconds } = env.config.errorBackoff;
  const delay = backoffDelay(s.errorCount, {
    baseMs: baseSeconds * 1000,
    capMs: capSeconds * 1000,
    jitter: 0.5,
  });
  const at = ctx.now().getTime() + delay;
  env.retries.set(ctx.key, { at, inputs: await retryInputs(ctx) });
  s.errorRetryAt = timestamp(new Date(at));
  if (OPERATIONS[from]) {
    enter(ctx, from, 'error', message);
  } else {
    const reason = type.replace(/(^|\s)(\w)/g, (_m, _s, c: string) => c.toUpperCase()).replace(/\s/g, '');
    const count = s.errorCount;
    ctx.afterWrite.push(() => {
      ctx.event('Warning', reason, `${message} (retry ${count} in ${Math.round(delay / 1000)} s)`);
      ctx.logger.warn({ state: from, errorType: type, errorCount: count, message }, 'host error');
    });
  }
  return delay;
}

function clearError(ctx: HostContext): void {
  const s = ctx.status;
  if (s.errorType === undefined && s.errorCount === undefined && s.errorMessage === undefined) return;
  delete s.errorType;
  delete s.errorMessage;
  delete s.errorCount;
  delete s.errorRetryAt;
  ctx.env.retries.delete(ctx.key);
}

function operationalStatus(
  ctx: HostContext,
  delayed: boolean,
): NonNullable<BareMetalHost['status']>['operationalStatus'] {
  if (ctx.annotation(BMH_ANNOTATIONS.detached) !== undefined) return 'detached';
  if (ctx.status.errorType !== undefined) return 'error';
  if (delayed) return 'delayed';
  return 'OK';
}

/** BMC failures no retry fixes: the host is Stalled until a person changes the Secret or the spec. */
function stallOf(e: BmcError): string | undefined {
  if (e instanceof BmcAuthError) return 'CredentialsRefused';
  if (e instanceof BmcCredentialsError) return 'CredentialsInvalid';
  if (e instanceof BmcAddressError) return 'InvalidBMCAddress';
  return undefined;
}

function toResult(state: ProvisioningState, e: unknown): HandlerResult {
  if (e instanceof HostError) return failed(e.type, e.message);
  if (e instanceof BmcError) return failed(DEFAULT_ERROR_TYPE[state], e.message, stallOf(e));
  // A child the store refuses (e.g. a name too long for Matchbox) will not fix itself by retrying fast.
  if (e instanceof InvalidError) return failed(DEFAULT_ERROR_TYPE[state], e.message);
  throw e;
}

// ---------------------------------------------------------------------------------------------
// The dispatcher.

/** Reconciles one host: read, checks, handler, bookkeeping, one status write. */
export async function reconcileHost(
  env: HostEnv,
  ref: ObjectRef,
  logger: Logger,
  handlers: Record<ProvisioningState, Handler> = HANDLERS,
): Promise<ReconcileResult> {
  let host: BareMetalHost & Resource;
  try {
    host = await env.store.get(HOST_KIND, ref);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    const key = hostKey({ metadata: ref });
    await env.bmcs.forget(key);
    env.events.forget?.({ kind: 'BareMetalHost', metadata: { namespace: ref.namespace, name: ref.name } });
    env.slots.release(key);
    env.retries.delete(key);
    env.power.forget(key);
    return {};
  }
  const ctx = new HostContext(env, host, withFields(logger, { host: hostKey(host) }));
  for (const check of CHECKS) {
    let outcome: CheckOutcome;
    try {
      outcome = await check.run(ctx);
    } catch (e) {
      outcome = { result: toResult(ctx.state ?? INITIAL_STATE, e), write: true };
    }
    if (outcome) {
      if (!outcome.write) return {};
      return finish(ctx, outcome.result, { fromHandler: false });
    }
  }
  const state = ctx.state ?? INITIAL_STATE;
  let result: HandlerResult;
  try {
    result = await handlers[state](ctx);
  } catch (e) {
    result = toResult(state, e);
  }
  return finish(ctx, result, { fromHandler: true });
}

async function finish(
  ctx: HostContext,
  result: HandlerResult,
  opts: { fromHandler: boolean },
): Promise<ReconcileResult> {
  // An install attempt ended in this reconcile (done, failed, withdrawn, deleted): revoke its tokens.
  if (
    ctx.host.status?.provisioning?.startedAt !== undefined &&
    ctx.status.provisioning?.startedAt === undefined
  ) {
    await ctx.env.hooks().provisioningEnded({ ...ctx.host, status: ctx.status });
  }
  if (result.kind === 'gone') {
    for (const effect of ctx.afterWrite.splice(0)) effect();
    return {};
  }
  recordBmcNotices(ctx);
  const state = ctx.state ?? INITIAL_STATE;
  let requeueAfter: number | undefined;
  const delayed = !opts.fromHandler && ctx.status.operationalStatus === 'delayed' && result.kind === 'stay';
  if (result.kind === 'next') {
    enter(ctx, state, result.state, result.reason);
    if (state !== 'error') clearError(ctx);
    requeueAfter = 0;
  } else if (result.kind === 'error') {
    requeueAfter = await recordError(ctx, state, result.type, result.message);
  } else {
    if (opts.fromHandler && state !== 'error') clearError(ctx);
    requeueAfter = result.requeueAfter;
  }
  ctx.status.operationalStatus = operationalStatus(ctx, delayed);
  ctx.status.observedGeneration = ctx.generation;
  setHostHealth(ctx, result);
  await ctx.persist();
  const final = ctx.state;
  if (final !== 'provisioning' && !holdsSlot({ ...ctx.host, status: ctx.status } as BareMetalHost))
    ctx.env.slots.release(ctx.key);
  return requeueAfter === undefined ? {} : { requeueAfter };
}
