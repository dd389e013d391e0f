// Health as GitOps tools read it (kstatus conventions, which Flux and kpt compute and Argo CD's
// checks in deploy/argocd/ follow): `Ready` says whether the object is in the state its spec asks
// for; `Reconciling=True` while the controller works toward it; `Stalled=True` when it cannot get
// there without a person. Reconciling and Stalled are "abnormal-true" conditions: present only
// while True, so a healthy object carries Ready alone. Every kind computes a verdict and applies
// it here, so the three conditions never contradict each other or outlive the phase that set them.
import { type Condition, removeCondition, setCondition } from './conditions.ts';

export const HEALTH_CONDITIONS = {
  ready: 'Ready',
  reconciling: 'Reconciling',
  stalled: 'Stalled',
} as const;

export type Health =
  /** In the state the spec asks for. */
  | { state: 'ready'; reason: string; message: string }
  /** Working toward it; `reason` names the step or what it waits for. */
  | { state: 'reconciling'; reason: string; message: string }
  /** Needs a person (retries used up, a conflict, refused credentials, an invalid input). */
  | { state: 'stalled'; reason: string; message: string }
  /** Not there, and deliberately not working on it (detached, waiting for the user's go). */
  | { state: 'waiting'; reason: string; message: string };

/** The conditions with Ready/Reconciling/Stalled set from `health`, computed for `generation`. */
export function withHealth(
  conditions: readonly Condition[] | undefined,
  health: Health,
  generation: number,
  now: Date = new Date(),
): Condition[] {
  const { reason, message } = health;
  const observedGeneration = generation;
  let list = setCondition(
    conditions,
    {
      type: HEALTH_CONDITIONS.ready,
      status: health.state === 'ready' ? 'True' : 'False',
      reason,
      message,
      observedGeneration,
    },
    now,
  );
  for (const [type, on] of [
    [HEALTH_CONDITIONS.reconciling, health.state === 'reconciling'],
    [HEALTH_CONDITIONS.stalled, health.state === 'stalled'],
  ] as const) {
    list = on
      ? setCondition(list, { type, status: 'True', reason, message, observedGeneration }, now)
      : removeCondition(list, type);
  }
  return list;
}

/** "provisioning error" → "ProvisioningError": a condition reason from a lower-case phrase. */
export function reasonOf(phrase: string): string {
  return phrase.replace(/(^|[\s-]+)(\w)/g, (_m, _s, c: string) => c.toUpperCase()).replace(/\W/g, '');
}
