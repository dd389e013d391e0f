// The Talos controller family: the TalosMachineConfig controller (rendering), the config server,
// the event sink, and the ProvisioningHooks handed to the BareMetalHost controller.
import { readFileSync } from 'node:fs';
import { provideProvisioningHooks } from '../controllers/baremetalhost/family.ts';
import type { ProvisioningHooks } from '../controllers/baremetalhost/hooks.ts';
import type { ControllerDeps, ControllerFamily } from '../controllers/index.ts';
import { FamilyInformers } from '../controllers/informers.ts';
import { talosMachineConfigController } from '../controllers/talosmachineconfig.ts';
import type { ControllerSpec } from '../runtime/controller.ts';
import type { Informer } from '../runtime/informer.ts';
import { withFields } from '../runtime/logger.ts';
import { isWildcard, parseTalosConfig, splitHostPort, type TalosConfigSection } from './config.ts';
import { ConfigServer } from './configserver.ts';
import { EventSink } from './eventsink.ts';
import { talosProvisioningHooks } from './hooks.ts';
import type { Host } from './host-status.ts';
import { HostTable } from './host-table.ts';
import { trustedRootsEarlyArg } from './kernel-args.ts';
import { HOST_KIND } from './kinds.ts';
import { TalosMetrics } from './metrics.ts';
import { loadTokenKey } from './tokens.ts';

/** Everything the family built, for tests and the demo. */
export interface TalosSide {
  config: TalosConfigSection;
  metrics: TalosMetrics;
  hosts: Informer<Host>;
  configServer: ConfigServer;
  eventSink: EventSink;
  hooks: ProvisioningHooks;
  /** The URL and address hosts are given. */
  configServerURL: string;
  eventSinkAddress: string;
  controller: ControllerSpec;
  stop(): Promise<void>;
}

export async function buildTalos(deps: ControllerDeps, config: TalosConfigSection): Promise<TalosSide> {
  const logger = withFields(deps.logger, { component: 'talos' });
  const metrics = new TalosMetrics(deps.registry);
  const cs = splitHostPort(config.configServer.listen);
  const sink = splitHostPort(config.eventSink.listen);
  if (isWildcard(cs.host) && !config.configServer.advertiseURL) {
    throw new Error('talos.configServer.advertiseURL is required when listening on all addresses');
  }
  if (isWildcard(sink.host) && !config.eventSink.advertiseAddress) {
    throw new Error('talos.eventSink.advertiseAddress is required when listening on all addresses');
  }
  const tokenKey = await loadTokenKey(deps.store, {
    namespace: config.tokenKeySecret.namespace ?? (deps.namespace || 'metalbox-system'),
    name: config.tokenKeySecret.name,
  });

  // After every check that can refuse the config: an informer of our own would outlive a refusal.
  const informers = new FamilyInformers(deps, logger);
  const hosts = informers.get<Host>(HOST_KIND);
  const table = new HostTable(hosts);
  const configServer = new ConfigServer({
    store: deps.store,
    events: deps.events,
    metrics,
    logger: withFields(logger, { server: 'config' }),
    lookup: (ref) => table.get(ref),
    listen: cs,
    ...(config.configServer.tls ? { tls: config.configServer.tls } : {}),
  });
  const eventSink = new EventSink({
    store: deps.store,
    events: deps.events,
    metrics,
    logger: withFields(logger, { server: 'eventsink' }),
    hosts: () => table.all(),
    version: () => String(table.version),
    listen: sink,
  });
  const stops: (() => Promise<void>)[] = [() => informers.stop()];
  const stop = async () => {
    for (const s of stops.reverse()) await s();
  };
  try {
    const bound = await configServer.start();
    stops.push(() => configServer.stop());
    const sinkPort = await eventSink.start();
    stops.push(() => eventSink.stop());
    const configServerURL =
      config.configServer.advertiseURL ?? `${configServer.scheme}://${cs.host}:${bound.port}`;
    const eventSinkAddress = config.eventSink.advertiseAddress ?? `${sink.host}:${sinkPort}`;
    configServer.advertiseEventSink(eventSinkAddress);
    const caFile = config.configServer.tls?.caFile;
    const hooks = talosProvisioningHooks({
      store: deps.store,
      tokenKey,
      configServerURL,
      eventSink: eventSinkAddress,
      tokenTTLSeconds: config.tokenTTLSeconds,
      ...(caFile ? { earlyArg: trustedRootsEarlyArg(readFileSync(caFile, 'utf8')) } : {}),
      events: deps.events,
      logger,
    });
    const controller = talosMachineConfigController({
      store: deps.store,
      events: deps.events,
      metrics,
      eventSinkEndpoint: eventSinkAddress,
      workers: config.workers,
    });
    logger.info(
      { configServerURL, eventSinkAddress, tokenTTLSeconds: config.tokenTTLSeconds },
      'Talos config delivery ready',
    );
    return {
      config,
      metrics,
      hosts,
      configServer,
      eventSink,
      hooks,
      configServerURL,
      eventSinkAddress,
      controller,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export const talosFamily: ControllerFamily = {
  name: 'talos',
  async build(deps: ControllerDeps) {
    if (deps.config.talos === undefined) {
      deps.logger.warn(
        {},
        'the config has no talos section: configs are rendered, but not served (no config server, no event sink, no install tracking)',
      );
      const metrics = new TalosMetrics(deps.registry);
      return {
        controllers: [talosMachineConfigController({ store: deps.store, events: deps.events, metrics })],
      };
    }
    const talos = await buildTalos(deps, parseTalosConfig(deps.config.talos));
    provideProvisioningHooks(deps, talos.hooks);
    return { controllers: [talos.controller], stop: () => talos.stop() };
  },
};
