// Who refers to what (groups → their profile, profiles → the Secret of their generic template),
// learnt from each reconcile, so a change of the referenced object re-queues its referrers. Every
// referrer is reconciled when the controller starts, so the index is complete soon after a restart.
import { type ObjectRef, objectKey, parseObjectKey } from '../../runtime/resource.ts';

export class ReferenceIndex {
  #targets = new Map<string, string[]>();
  #referrers = new Map<string, Set<string>>();

  /** `from` now refers to exactly `targets` (object keys `namespace/name`). */
  set(from: string, targets: readonly string[]): void {
    this.delete(from);
    if (targets.length === 0) return;
    this.#targets.set(from, [...targets]);
    for (const t of targets) {
      let set = this.#referrers.get(t);
      if (!set) {
        set = new Set();
        this.#referrers.set(t, set);
      }
      set.add(from);
    }
  }

  delete(from: string): void {
    for (const t of this.#targets.get(from) ?? []) {
      const set = this.#referrers.get(t);
      set?.delete(from);
      if (set?.size === 0) this.#referrers.delete(t);
    }
    this.#targets.delete(from);
  }

  /** Refs of the objects that refer to `target`. */
  referrers(target: ObjectRef): ObjectRef[] {
    return [...(this.#referrers.get(objectKey(target)) ?? [])].map(parseObjectKey);
  }
}
