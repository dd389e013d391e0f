// The host controller's Prometheus metrics. Hosts per state is computed at scrape time from the
// informer cache, so it is always the truth of the store, never a counter that can drift.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { PROVISIONING_STATES } from '../../crds/baremetalhost.ts';

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export class HostMetrics {
  readonly transitions: Counter<'from' | 'to'>;
  readonly operationDuration: Histogram<'operation'>;
  readonly errors: Counter<'type'>;
  readonly delayed: Counter;
  readonly powerActions: Counter<'action'>;

  constructor(registry: Registry, statesOf: () => Iterable<string | undefined>) {
    const registers = [registry];
    metric(
      registry,
      'metalbox_hosts',
      () =>
        new Gauge({
          name: 'metalbox_hosts',
          help: 'BareMetalHosts per provisioning state.',
          labelNames: ['state'],
          registers,
          collect() {
            const counts = new Map<string, number>(PROVISIONING_STATES.map((s) => [s, 0]));
            for (const state of statesOf()) {
              const s = state ?? 'none';
              counts.set(s, (counts.get(s) ?? 0) + 1);
            }
            for (const [state, n] of counts) this.set({ state }, n);
          },
        }),
    );
    this.transitions = metric(
      registry,
      'metalbox_host_state_transitions_total',
      () =>
        new Counter({
          name: 'metalbox_host_state_transitions_total',
          help: 'BareMetalHost provisioning state changes.',
          labelNames: ['from', 'to'],
          registers,
        }),
    );
    this.operationDuration = metric(
      registry,
      'metalbox_host_operation_duration_seconds',
      () =>
        new Histogram({
          name: 'metalbox_host_operation_duration_seconds',
          help: 'Duration of register, inspect, provision and deprovision operations (operationHistory start to end).',
          labelNames: ['operation'],
          buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
          registers,
        }),
    );
    this.errors = metric(
      registry,
      'metalbox_host_errors_total',
      () =>
        new Counter({
          name: 'metalbox_host_errors_total',
          help: 'BareMetalHost errors by error type.',
          labelNames: ['type'],
          registers,
        }),
    );
    this.delayed = metric(
      registry,
      'metalbox_host_delayed_total',
      () =>
        new Counter({
          name: 'metalbox_host_delayed_total',
          help: 'Times a host waited for a provisioning slot (provisioning limit reached).',
          registers,
        }),
    );
    this.powerActions = metric(
      registry,
      'metalbox_host_power_actions_total',
      () =>
        new Counter({
          name: 'metalbox_host_power_actions_total',
          help: 'Power actions the host controller asked a BMC for (on, off, reboot, pxe-once).',
          labelNames: ['action'],
          registers,
        }),
    );
  }
}
