// The BareMetalHost controller family: config, BMC factory, caches, and the ControllerSpec
// ("for BareMetalHost, owns MatchboxProfile and MatchboxGroup, watches Secret → hosts using it").
// The OS-config side plugs in its ProvisioningHooks with provideProvisioningHooks(deps, hooks).
import { createBmcFactory } from '../../bmc/factory.ts';
import type { BareMetalHost } from '../../crds/baremetalhost.ts';
import { normalizeMac } from '../../crds/common.ts';
import type { MatchboxGroup } from '../../crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../../crds/matchboxprofile.ts';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { withFields } from '../../runtime/logger.ts';
import type { Resource } from '../../runtime/resource.ts';
import type { ControllerDeps, ControllerFamily } from '../index.ts';
import { FamilyInformers } from '../informers.ts';
import { HostBmcs } from './bmc.ts';
import { bmcLogger } from './bmc-logger.ts';
import { type HostControllerConfig, parseHostControllerConfig } from './config.ts';
import type { HostEnv } from './context.ts';
import { noProvisioningHooks, type ProvisioningHooks } from './hooks.ts';
import { HostIndex } from './host-index.ts';
import { bmcIdentity, bootMac } from './identity.ts';
import { GROUP_KIND, HOST_KIND, PROFILE_KIND, SECRET_KIND } from './kinds.ts';
import { HostMetrics } from './metrics.ts';
import { PowerMemory } from './power-memory.ts';
import { ProvisioningSlots } from './slots.ts';
import { reconcileHost } from './states.ts';

// Keyed by the store: families of one process share it, while each gets its own deps (own logger).
const hooksByStore = new WeakMap<ControllerDeps['store'], ProvisioningHooks>();

/**
 * Gives the host controller built from `deps` the OS-config side's hooks (the Talos family calls
 * this in its build). Read on every reconcile, so the order families are built in does not matter.
 */
export function provideProvisioningHooks(deps: ControllerDeps, hooks: ProvisioningHooks): void {
  hooksByStore.set(deps.store, hooks);
}

function hooksFor(deps: ControllerDeps): ProvisioningHooks {
  const field = (deps as ControllerDeps & { provisioningHooks?: ProvisioningHooks }).provisioningHooks;
  return field ?? hooksByStore.get(deps.store) ?? noProvisioningHooks;
}

type Host = BareMetalHost & Resource;

/** Hosts that depend on a changed object (other than their own children). */
function mappers(index: HostIndex) {
  return {
    secret: (secret: Resource) =>
      index.hostsUsingSecret(secret.metadata.namespace ?? '', secret.metadata.name),
    // A host's identity changed: the hosts it shares (or shared) a MAC or BMC with look again.
    host: (changed: Resource) => {
      const c = changed as Host;
      return [...index.hostsWithMac(bootMac(c)), ...index.hostsWithBmc(bmcIdentity(c.spec.bmc.address))];
    },
    // A group someone else owns may select a host's MAC (a conflict), or stop doing so.
    group: (group: Resource) => {
      const selected = (group as MatchboxGroup & Resource).spec?.selector?.mac;
      return selected ? index.hostsWithMac(normalizeMac(selected)) : [];
    },
    // A host waits for the user's profiles it references (install base, rescue) to exist and sync.
    profile: (profile: Resource) =>
      index.hostsUsingProfile(profile.metadata.namespace ?? '', profile.metadata.name),
  };
}

/** The controller's environment and spec, for the family and for tests that drive it directly. */
export function buildHostController(
  deps: ControllerDeps,
  config: HostControllerConfig,
): { env: HostEnv; spec: ControllerSpec; stop(): Promise<void> } {
  const logger = withFields(deps.logger, { controller: 'baremetalhost' });
  const b = config.bmc;
  const factory = createBmcFactory({
    registry: deps.registry,
    logger: bmcLogger(deps.logger),
    protection: {
      ...(b.perBmcConcurrency !== undefined ? { perBmcConcurrency: b.perBmcConcurrency } : {}),
      ...(b.globalConcurrency !== undefined ? { globalConcurrency: b.globalConcurrency } : {}),
      ...(b.failureThreshold !== undefined ? { failureThreshold: b.failureThreshold } : {}),
      ...(b.openSeconds !== undefined ? { openMs: b.openSeconds * 1000 } : {}),
    },
    redfish: {
      ...(b.requestTimeoutSeconds !== undefined ? { requestTimeoutMs: b.requestTimeoutSeconds * 1000 } : {}),
      ...(b.retries !== undefined ? { retries: b.retries } : {}),
    },
    ipmi: {
      ...(b.requestTimeoutSeconds !== undefined ? { callTimeoutMs: b.requestTimeoutSeconds * 1000 } : {}),
      ...(b.cycleSettleSeconds !== undefined ? { cycleSettleMs: b.cycleSettleSeconds * 1000 } : {}),
    },
  });
  const informers = new FamilyInformers(deps, logger);
  const hosts = informers.get<Host>(HOST_KIND);
  const groups = informers.get<MatchboxGroup & Resource>(GROUP_KIND);
  const profiles = informers.get<MatchboxProfile & Resource>(PROFILE_KIND);
  const caches = [hosts, groups, profiles];
  const index = new HostIndex(hosts, groups);

  const env: HostEnv = {
    store: deps.store,
    hosts,
    groups,
    profiles,
    bmcs: new HostBmcs(factory, deps.store),
    hooks: () => hooksFor(deps),
    config,
    events: deps.events,
    metrics: new HostMetrics(deps.registry, () => index.states()),
    slots: new ProvisioningSlots(config.provisioningLimit, () => index.slotHolders()),
    index,
    power: new PowerMemory(config.powerSettleSeconds * 1000),
    retries: new Map(),
    now: () => new Date(),
    logger,
  };
  const map = mappers(index);
  const spec: ControllerSpec = {
    name: 'baremetalhost',
    for: HOST_KIND,
    owns: [PROFILE_KIND, GROUP_KIND],
    watches: [
      { kind: SECRET_KIND, map: map.secret },
      { kind: HOST_KIND, map: map.host },
      { kind: GROUP_KIND, map: map.group },
      { kind: PROFILE_KIND, map: map.profile },
    ],
    workers: config.workers,
    async reconcile(req, ctx) {
      await Promise.all(caches.map((c) => c.waitForSync(ctx.signal)));
      return reconcileHost(env, req, ctx.logger);
    },
  };
  return {
    env,
    spec,
    async stop() {
      await informers.stop();
      await env.bmcs.closeAll();
      await factory.closeAll();
    },
  };
}

export const bareMetalHostFamily: ControllerFamily = {
  name: 'baremetalhost',
  async build(deps) {
    const built = buildHostController(deps, parseHostControllerConfig(deps.config.baremetalhost));
    return { controllers: [built.spec], stop: () => built.stop() };
  },
};
