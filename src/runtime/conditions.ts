/** metav1.Condition helpers. Functions return new arrays; inputs are never changed. */
import { timestamp } from './resource.ts';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  /** CamelCase, named for what a user asks ("Ready", "PowerCycled"). */
  type: string;
  status: ConditionStatus;
  /** CamelCase machine-readable cause. */
  reason: string;
  message: string;
  /** When status last changed (RFC 3339). */
  lastTransitionTime: string;
  /** metadata.generation the condition was computed from. */
  observedGeneration?: number;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime'> & { lastTransitionTime?: string };

/**
 * Sets one condition by type. lastTransitionTime moves only when status changes; reason, message
 * and observedGeneration are always taken from `input`.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const existing = index >= 0 ? list[index] : undefined;
  const lastTransitionTime =
    existing && existing.status === input.status
      ? existing.lastTransitionTime
      : (input.lastTransitionTime ?? timestamp(now));
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    lastTransitionTime,
    ...(input.observedGeneration === undefined ? {} : { observedGeneration: input.observedGeneration }),
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

export function isFalse(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'False';
}

/** True when the condition exists and was computed from `generation` (not stale). */
export function isCurrent(
  conditions: readonly Condition[] | undefined,
  type: string,
  generation: number,
): boolean {
  return findCondition(conditions, type)?.observedGeneration === generation;
}
