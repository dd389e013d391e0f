// The one place that says which controllers the `metalbox controller` process runs. Each controller
// family contributes a factory; the CLI builds the shared dependencies once and passes them in.
import type { Registry } from 'prom-client';
import type { ControllerSpec } from '../runtime/controller.ts';
import type { EventRecorder } from '../runtime/events.ts';
import type { Informer } from '../runtime/informer.ts';
import type { Logger } from '../runtime/logger.ts';
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
