// SIMULATION: reports what a simulated machine did on its BareMetalHost, standing in for the Talos
// config server and event sink until those exist: the INSTALL_CONDITIONS and lastObservedBoot,
// every reason prefixed "Simulated" and every message "SIMULATION:".
import { INSTALL_CONDITIONS } from '../controllers/baremetalhost/hooks.ts';
import { HOST_KIND } from '../controllers/baremetalhost/kinds.ts';
import type { BareMetalHost } from '../crds/baremetalhost.ts';
import { setCondition } from '../runtime/conditions.ts';
import { type ObjectRef, type Resource, timestamp } from '../runtime/resource.ts';
import { retryOnConflict } from '../runtime/retry.ts';
import type { ResourceStore } from '../runtime/store.ts';

export type SimulatedMilestone = 'config-fetched' | 'installed' | 'booted';

export interface InstallReporter {
  report(milestone: SimulatedMilestone, detail: string): Promise<void>;
}

const CONDITIONS: Record<SimulatedMilestone, { types: string[]; reason: string }> = {
  'config-fetched': { types: [INSTALL_CONDITIONS.configDelivered], reason: 'SimulatedConfigFetch' },
  installed: { types: [INSTALL_CONDITIONS.installed], reason: 'SimulatedInstall' },
  booted: {
    types: [INSTALL_CONDITIONS.bootedFromDisk, INSTALL_CONDITIONS.ready],
    reason: 'SimulatedDiskBoot',
  },
};

const PHASE: Record<SimulatedMilestone, 'config-fetched' | 'installed' | 'booted'> = {
  'config-fetched': 'config-fetched',
  installed: 'installed',
  booted: 'booted',
};

/** Writes the milestones onto the host's status through the store (conflicts retried). */
export function storeInstallReporter(store: ResourceStore, ref: ObjectRef): InstallReporter {
  return {
    async report(milestone, detail) {
      const { types, reason } = CONDITIONS[milestone];
      const message = `SIMULATION: ${detail}`.slice(0, 1024);
      await retryOnConflict(
        async () => {
          const host = await store.get<BareMetalHost & Resource>(HOST_KIND, ref);
          const status = structuredClone(host.status ?? {});
          for (const type of types) {
            status.conditions = setCondition(status.conditions, {
              type,
              status: 'True',
              reason,
              message,
              observedGeneration: host.metadata.generation ?? 0,
            });
          }
          status.lastObservedBoot = { time: timestamp(), phase: PHASE[milestone], message };
          await store.updateStatus(HOST_KIND, { ...host, status });
        },
        { attempts: 20 },
      );
    },
  };
}
