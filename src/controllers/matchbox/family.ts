// The Matchbox controller family: from the `matchbox:` config section, the endpoint clients, the
// MatchboxProfile and MatchboxGroup sync controllers (the only code that talks to Matchbox) and
// the per-endpoint drift scans.

import { randomBytes } from 'node:crypto';
import type { ControllerSpec } from '../../runtime/controller.ts';
import { withFields } from '../../runtime/logger.ts';
import type { ControllerDeps, ControllerFamily } from '../index.ts';
import { type MatchboxSyncConfig, parseMatchboxSyncConfig } from './config.ts';
import { type DriftDeps, scanEndpoint } from './drift.ts';
import { DriftSchedule } from './drift-schedule.ts';
import { EndpointPool } from './endpoints.ts';
import { matchboxGroupController } from './group.ts';
import { MatchboxSyncMetrics } from './metrics.ts';
import { matchboxProfileController } from './profile.ts';
import { ReferenceIndex } from './references.ts';
import { matchboxBootAnswerController } from './verify.ts';

/** Everything the family built, for tests and benchmarks that drive it directly. */
export interface MatchboxSync {
  config: MatchboxSyncConfig;
  /** The owner identity written into every Matchbox object. */
  owner: string;
  /** What the drift scans run with (benchmarks call scanEndpoint with it). */
  driftDeps: DriftDeps;
  pool: EndpointPool;
  metrics: MatchboxSyncMetrics;
  drift: DriftSchedule;
  controllers: ControllerSpec[];
  stop(): Promise<void>;
}

/** Owner identities of stores that have none of their own (in-process stores in tests): one per store object. */
const inProcessOwners = new WeakMap<object, string>();
function inProcessOwner(store: object): string {
  let owner = inProcessOwners.get(store);
  if (owner === undefined) {
    owner = `process-${randomBytes(6).toString('hex')}`;
    inProcessOwners.set(store, owner);
  }
  return owner;
}

export function buildMatchboxSync(deps: ControllerDeps, config: MatchboxSyncConfig): MatchboxSync {
  const logger = withFields(deps.logger, { component: 'matchbox-sync' });
  const metrics = new MatchboxSyncMetrics(deps.registry);
  const pool = new EndpointPool(config.endpoints, deps.store, metrics);
  const owner = config.owner ?? deps.owner ?? inProcessOwner(deps.store);
  const driftDeps: DriftDeps = {
    store: deps.store,
    pool,
    events: deps.events,
    metrics,
    logger,
    namespace: deps.namespace,
    owner,
    sharedSelectors: new Map<string, Map<string, string[]>>(),
  };
  const drift = new DriftSchedule({
    endpoints: pool.endpoints,
    intervalMs: config.driftScanIntervalSeconds * 1000,
    scan: (endpoint) => scanEndpoint(driftDeps, endpoint),
    logger,
  });
  const syncDeps = {
    store: deps.store,
    pool,
    events: deps.events,
    owner,
    arm: (signal: AbortSignal) => drift.arm(signal),
  };
  /** Group → profile: kept by the group sync, read by both group controllers' profile watches. */
  const profileRefs = new ReferenceIndex();
  const controllers: ControllerSpec[] = [
    matchboxProfileController({ ...syncDeps, workers: Math.min(config.workers, 4) }),
    matchboxGroupController({
      ...syncDeps,
      workers: config.workers,
      verifyBootAnswers: config.verifyBootAnswers,
      profileRefs,
    }),
  ];
  if (config.verifyBootAnswers) {
    controllers.push(
      matchboxBootAnswerController({ store: deps.store, events: deps.events, pool, metrics, profileRefs }),
    );
  }
  return {
    config,
    owner,
    driftDeps,
    pool,
    metrics,
    drift,
    controllers,
    async stop() {
      await drift.stop();
      pool.close();
    },
  };
}

export const matchboxFamily: ControllerFamily = {
  name: 'matchbox',
  async build(deps: ControllerDeps) {
    if (deps.config.matchbox === undefined) {
      deps.logger.warn(
        {},
        'the config has no matchbox section: MatchboxProfiles and MatchboxGroups are not synced',
      );
      return { controllers: [] };
    }
    const sync = buildMatchboxSync(deps, parseMatchboxSyncConfig(deps.config.matchbox));
    deps.logger.info(
      {
        endpoints: sync.pool.endpoints.map((e) => `${e.name}=${e.address}`),
        driftScanIntervalSeconds: sync.config.driftScanIntervalSeconds,
        owner: sync.owner,
        verifyBootAnswers: sync.config.verifyBootAnswers,
      },
      'Matchbox sync configured',
    );
    return { controllers: sync.controllers, stop: () => sync.stop() };
  },
};
