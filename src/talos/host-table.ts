// The hosts as the config server and event sink read them: fed by an informer's events, read without
// copying. The config server looks up a host on every request, and a lookup must cost the same for
// a host that exists and one that does not (Informer.get clones the object it finds).
import type { Informer } from '../runtime/informer.ts';
import { type ObjectRef, objectKey, refOf } from '../runtime/resource.ts';
import type { Host } from './host-status.ts';

export class HostTable {
  #hosts = new Map<string, Host>();
  #version = 0;

  /** Follows `informer` (call before it starts, or after: its current cache is taken over). */
  constructor(informer?: Informer<Host>) {
    if (!informer) return;
    for (const h of informer.list()) this.set(h);
    informer.on('add', (h) => this.set(h));
    informer.on('update', (h) => this.set(h));
    informer.on('delete', (h) => this.delete(h));
  }

  set(host: Host): void {
    this.#hosts.set(objectKey(refOf(host)), host);
    this.#version++;
  }

  delete(host: Host): void {
    this.#hosts.delete(objectKey(refOf(host)));
    this.#version++;
  }

  /** The cached host itself: treat it as read-only. */
  get(ref: ObjectRef): Host | undefined {
    return this.#hosts.get(objectKey(ref));
  }

  all(): Host[] {
    return [...this.#hosts.values()];
  }

  /** Changes whenever the table does. */
  get version(): number {
    return this.#version;
  }
}
