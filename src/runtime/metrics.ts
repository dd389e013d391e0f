/** The runtime's Prometheus metrics, registered in the registry the caller passes (never the global one). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class RuntimeMetrics {
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly queueDepth: Gauge<'controller'>;
  readonly leader: Gauge;
  readonly informerRestarts: Counter<'kind' | 'reason'>;
  readonly informerRelists: Counter<'kind' | 'reason'>;
  #depths = new Map<string, () => number>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.reconcileTotal = new Counter({
      name: 'metalbox_reconcile_total',
      help: 'Reconciles per controller by result (success, requeue_after, conflict, error).',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'metalbox_reconcile_errors_total',
      help: 'Reconciles that failed (including conflicts) per controller.',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'metalbox_reconcile_duration_seconds',
      help: 'Time spent in one reconcile.',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    const depths = this.#depths;
    this.queueDepth = new Gauge({
      name: 'metalbox_workqueue_depth',
      help: 'Keys waiting in a controller work queue.',
      labelNames: ['controller'],
      registers,
      collect() {
        for (const [controller, depth] of depths) this.set({ controller }, depth());
      },
    });
    this.leader = new Gauge({
      name: 'metalbox_leader',
      help: '1 while this replica holds leadership and reconciles, else 0.',
      registers,
    });
    this.leader.set(0);
    this.informerRestarts = new Counter({
      name: 'metalbox_informer_restarts_total',
      help: 'Watch restarts per kind by reason (error, stall, closed).',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.informerRelists = new Counter({
      name: 'metalbox_informer_relists_total',
      help: 'Full lists per kind by reason (initial, gone, error).',
      labelNames: ['kind', 'reason'],
      registers,
    });
  }

  /** Reports a controller's queue depth at scrape time. */
  trackQueue(controller: string, depth: () => number): void {
    this.#depths.set(controller, depth);
  }
}
