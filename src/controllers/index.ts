// The one place that says which controllers the `metalbox controller` process runs. Each controller
// family contributes a factory; the CLI builds the shared dependencies once and passes them in.
import type { Registry } from 'prom-client';
import type { ControllerSpec } from '../runtime/controller.ts';
import type { EventRecorder } from '../runtime/events.ts';
import type { Informer } from '../runtime/informer.ts';
import { type Logger, withFields } from '../runtime/logger.ts';
import type { Manager } from '../runtime/manager.ts';
import type { Resource, ResourceKind } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { talosFamily } from '../talos/family.ts';
import { bareMetalHostFamily } from './baremetalhost/family.ts';
import { matchboxFamily } from './matchbox/family.ts';

/** What every controller family may use; families add their own settings under `config`. */
export interface ControllerDeps {
  store: ResourceStore;
  events: EventRecorder;
  logger: Logger;
  registry: Registry;
  /** Namespace the controller watches ('' = all). */
  namespace: string;
  /**
   * Owner identity of this instance's store (derived from it: cluster, etcd cluster and prefix,
   * file dir), written into every Matchbox object it creates; `matchbox.owner` overrides it.
   */
  owner?: string;
  /** The parsed `--config` file (each family validates its own section with zod). */
  config: Record<string, unknown>;
  /**
   * The manager's shared informer for a kind (started and stopped by the manager). Absent when a
   * family is built on its own; it then runs its own (see FamilyInformers).
   */
  informer?: <T extends Resource>(kind: ResourceKind) => Informer<T>;
}

/** A controller family: builds its ControllerSpecs (and may start/stop helpers such as servers). */
export interface ControllerFamily {
  name: string;
  build(deps: ControllerDeps): Promise<{ controllers: ControllerSpec[]; stop?: () => Promise<void> }>;
}

/** Families in start order. Add new families here. */
export const controllerFamilies: ControllerFamily[] = [matchboxFamily, bareMetalHostFamily, talosFamily];

/** What addControllerFamilies built. */
export interface BuiltFamilies {
  /** Names of the controllers added to the manager. */
  controllers: string[];
  /** Stops every family, the last built first; a stop that fails does not keep the others running. */
  stop(): Promise<void>;
}

/**
 * Builds every family with the manager's shared informers and its own logger, and adds their
 * controllers to `manager` (`workers` overrides each controller's worker count). When a family
 * fails to build, those built before it are stopped and the error is thrown.
 */
export async function addControllerFamilies(
  manager: Manager,
  deps: Omit<ControllerDeps, 'informer'>,
  options: { workers?: number | undefined; onStopError?: (family: string, error: unknown) => void } = {},
): Promise<BuiltFamilies> {
  const stops: { family: string; stop: () => Promise<void> }[] = [];
  const controllers: string[] = [];
  const stop = async () => {
    for (const { family, stop } of stops.splice(0).reverse()) {
      await stop().catch((error: unknown) => {
        if (options.onStopError) options.onStopError(family, error);
        else throw error;
      });
    }
  };
  try {
    for (const family of controllerFamilies) {
      const built = await family.build({
        ...deps,
        logger: withFields(deps.logger, { family: family.name }),
        informer: (kind) => manager.informer(kind),
      });
      if (built.stop) stops.push({ family: family.name, stop: built.stop });
      for (const spec of built.controllers) {
        manager.add(options.workers === undefined ? spec : { ...spec, workers: options.workers });
        controllers.push(spec.name);
      }
    }
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  return { controllers, stop };
}
