// Prometheus metrics of the Talos side, registered in the registry the family is given.
import { Counter, type Registry } from 'prom-client';

export class TalosMetrics {
  readonly renders: Counter<'result'>;
  readonly secretWrites: Counter<'action'>;
  readonly configRequests: Counter<'result'>;
  readonly events: Counter<'type'>;
  readonly unmatchedEvents: Counter<'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.renders = new Counter({
      name: 'metalbox_talos_config_renders_total',
      help: 'Host machine configs rendered, by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
    this.secretWrites = new Counter({
      name: 'metalbox_talos_config_secret_writes_total',
      help: 'Writes of rendered-config Secrets (create, update, delete).',
      labelNames: ['action'],
      registers,
    });
    this.configRequests = new Counter({
      name: 'metalbox_talos_config_requests_total',
      help: 'Config server requests by result (served, refused, refetch, error).',
      labelNames: ['result'],
      registers,
    });
    this.events = new Counter({
      name: 'metalbox_talos_events_total',
      help: 'Talos events received by the event sink, by payload type.',
      labelNames: ['type'],
      registers,
    });
    this.unmatchedEvents = new Counter({
      name: 'metalbox_talos_events_unmatched_total',
      help: 'Talos events ignored, by reason: unknown-address (fetched no config), unconfirmed-static-address (a host’s static address before the machine reported it or booted from disk).',
      labelNames: ['reason'],
      registers,
    });
  }
}
