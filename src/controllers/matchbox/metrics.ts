// Prometheus metrics of the Matchbox sync: calls per endpoint, endpoint health, drift scans and
// every repair they make. Registered in the registry the controller process serves.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type RepairAction = 'created' | 'updated' | 'deleted';

export class MatchboxSyncMetrics {
  readonly calls: Counter<'endpoint' | 'operation' | 'result'>;
  readonly endpointUp: Gauge<'endpoint'>;
  readonly driftRepairs: Counter<'endpoint' | 'kind' | 'action'>;
  readonly driftScans: Counter<'endpoint' | 'result'>;
  readonly driftScanDuration: Histogram<'endpoint'>;
  readonly bootAnswerChecks: Counter<'endpoint' | 'result'>;
  readonly notOwned: Gauge<'endpoint' | 'holder'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.calls = new Counter({
      name: 'metalbox_matchbox_calls_total',
      help: 'gRPC calls to a Matchbox endpoint by operation (ProfilePut, GroupList, ...) and result (ok, error, held: not sent because the endpoint recently timed out).',
      labelNames: ['endpoint', 'operation', 'result'],
      registers,
    });
    this.endpointUp = new Gauge({
      name: 'metalbox_matchbox_endpoint_up',
      help: '1 when the last call to the Matchbox endpoint got an answer, 0 when it was unreachable or refused the TLS handshake.',
      labelNames: ['endpoint'],
      registers,
    });
    this.driftRepairs = new Counter({
      name: 'metalbox_matchbox_drift_repairs_total',
      help: 'Objects a drift scan wrote again (created, updated) or removed (deleted) on a Matchbox endpoint.',
      labelNames: ['endpoint', 'kind', 'action'],
      registers,
    });
    this.driftScans = new Counter({
      name: 'metalbox_matchbox_drift_scans_total',
      help: 'Drift scans per Matchbox endpoint by result (ok, error).',
      labelNames: ['endpoint', 'result'],
      registers,
    });
    this.driftScanDuration = new Histogram({
      name: 'metalbox_matchbox_drift_scan_duration_seconds',
      help: 'Time one drift scan of a Matchbox endpoint took.',
      labelNames: ['endpoint'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.bootAnswerChecks = new Counter({
      name: 'metalbox_matchbox_boot_answer_checks_total',
      help: 'GET /ipxe checks of what a group boots, per endpoint and result (ok, mismatch, error).',
      labelNames: ['endpoint', 'result'],
      registers,
    });
    this.notOwned = new Gauge({
      name: 'metalbox_matchbox_objects_not_owned',
      help: 'Objects with metalbox ids in the managed namespaces that this instance leaves alone, as of the last drift scan: holder other-instance (another metalbox owner identity) or unmarked (written before owner identities, declared by no resource here).',
      labelNames: ['endpoint', 'holder'],
      registers,
    });
  }
}
