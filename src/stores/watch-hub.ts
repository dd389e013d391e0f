/**
 * Watch fan-out for the in-memory store: a bounded history of mutations (so a watch can resume from
 * a revision), live delivery to subscribers, periodic bookmarks, and Gone below the compacted point.
 */
import { Channel } from '../runtime/channel.ts';
import { GoneError } from '../runtime/errors.ts';
import type { Resource } from '../runtime/resource.ts';
import type { WatchEvent } from '../runtime/store.ts';

/** One committed change. */
export interface Mutation {
  revision: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** `group/plural` (resourceKey). */
  resource: string;
  object: Resource;
}

export interface WatchHubOptions {
  /** Mutations kept for resuming watches; older revisions are Gone. */
  historyLimit: number;
  bookmarkIntervalMs: number;
  currentRevision: () => number;
}

interface Watcher {
  resource: string;
  namespace: string | undefined;
  from: number;
  channel: Channel<WatchEvent>;
}

export class WatchHub {
  #history: Mutation[] = [];
  #compacted = 0;
  #watchers = new Set<Watcher>();
  #options: WatchHubOptions;

  constructor(options: WatchHubOptions) {
    this.#options = options;
  }

  get compactedRevision(): number {
    return this.#compacted;
  }

  publish(m: Mutation): void {
    this.#history.push(m);
    const limit = this.#options.historyLimit;
    // Trim in chunks so a steady stream of writes costs amortized O(1).
    if (this.#history.length > limit + Math.max(1, limit >> 2)) {
      const dropped = this.#history.splice(0, this.#history.length - limit);
      this.#compacted = Math.max(this.#compacted, dropped.at(-1)?.revision ?? 0);
    }
    for (const w of this.#watchers) {
      if (matches(w, m)) w.channel.push(eventOf(m));
    }
  }

  /** Forgets history up to `revision`: watching from an older revision is Gone. */
  compact(revision: number): void {
    const upTo = Math.min(revision, this.#options.currentRevision());
    if (upTo <= this.#compacted) return;
    this.#history = this.#history.filter((m) => m.revision > upTo);
    this.#compacted = upTo;
  }

  watch(
    resource: string,
    namespace: string | undefined,
    from: number,
    signal?: AbortSignal,
  ): Channel<WatchEvent> {
    const channel = new Channel<WatchEvent>(signal);
    if (channel.closed) return channel;
    if (from < this.#compacted) {
      channel.fail(
        new GoneError(`resourceVersion ${from} is older than the oldest kept revision ${this.#compacted}`),
      );
      return channel;
    }
    const watcher: Watcher = { resource, namespace, from, channel };
    for (const m of this.#history) {
      if (m.revision > from && matches(watcher, m)) channel.push(eventOf(m));
    }
    this.#watchers.add(watcher);
    const timer = setInterval(() => {
      const rv = Math.max(from, this.#options.currentRevision());
      channel.push({ type: 'BOOKMARK', resourceVersion: String(rv) });
    }, this.#options.bookmarkIntervalMs);
    channel.onClose(() => {
      clearInterval(timer);
      this.#watchers.delete(watcher);
    });
    return channel;
  }

  closeAll(): void {
    for (const w of [...this.#watchers]) w.channel.close();
  }
}

function matches(w: Watcher, m: Mutation): boolean {
  return (
    m.resource === w.resource &&
    m.revision > w.from &&
    (w.namespace === undefined || m.object.metadata.namespace === w.namespace)
  );
}

function eventOf(m: Mutation): WatchEvent {
  return { type: m.type, object: structuredClone(m.object) };
}
