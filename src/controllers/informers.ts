// Where a controller family gets its informers: the manager's shared ones (one list and one watch
// per kind for the whole process), or, when a family is built on its own (tests), informers of its
// own that it starts and stops itself.
import { Informer } from '../runtime/informer.ts';
import type { Logger } from '../runtime/logger.ts';
import type { Resource, ResourceKind } from '../runtime/resource.ts';
import type { ControllerDeps } from './index.ts';

export class FamilyInformers {
  readonly #deps: Pick<ControllerDeps, 'store' | 'namespace' | 'informer'>;
  readonly #logger: Logger;
  readonly #own: Informer[] = [];

  constructor(deps: Pick<ControllerDeps, 'store' | 'namespace' | 'informer'>, logger: Logger) {
    this.#deps = deps;
    this.#logger = logger;
  }

  get<T extends Resource>(kind: ResourceKind): Informer<T> {
    if (this.#deps.informer) return this.#deps.informer<T>(kind);
    const informer = new Informer<T>(this.#deps.store, kind, {
      ...(this.#deps.namespace ? { namespace: this.#deps.namespace } : {}),
      logger: this.#logger,
    });
    this.#own.push(informer as unknown as Informer);
    informer.start();
    return informer;
  }

  /** Stops the informers this family started (shared ones are the manager's to stop). */
  async stop(): Promise<void> {
    await Promise.all(this.#own.map((i) => i.stop()));
  }
}
