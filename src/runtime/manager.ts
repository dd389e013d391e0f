/**
 * Runs controllers: shared informers (one per kind, started at once so a standby is warm),
 * reconciling only while leading, /healthz /readyz /metrics, and graceful shutdown: stop taking
 * work, finish in-flight reconciles, release leadership, stop watches, close the server.
 */
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { Controller, type ControllerSpec } from './controller.ts';
import { OpsServer } from './http-server.ts';
import { Informer, type InformerOptions } from './informer.ts';
import { AlwaysLeader, type LeaderElector } from './leader.ts';
import { errorFields, type Logger, silentLogger } from './logger.ts';
import { RuntimeMetrics } from './metrics.ts';
import { type Resource, type ResourceKind, resourceKey } from './resource.ts';
import type { ResourceStore } from './store.ts';

export interface ManagerOptions {
  store: ResourceStore;
  /** Where the runtime's metrics are registered and what /metrics serves. */
  registry: Registry;
  /** Default: AlwaysLeader (single replica). */
  elector?: LeaderElector;
  logger?: Logger;
  /** Serve /healthz, /readyz and /metrics (port 0: any free port). Omit for no server. */
  http?: { host?: string; port: number };
  /** Informer tuning shared by every kind. */
  informer?: Omit<InformerOptions, 'namespace' | 'logger'>;
  /** Watch only this namespace (default: all). */
  namespace?: string;
  /** How long shutdown waits for in-flight reconciles before aborting them (default 30 s). */
  shutdownTimeoutMs?: number;
}

export type ManagerExit =
  | { reason: 'stopped' }
  /** Another replica may be reconciling now: exit the process. */
  | { reason: 'leadership-lost' }
  | { reason: 'elector-failed'; error: unknown };

type State = 'new' | 'running' | 'stopping' | 'stopped';

export class Manager {
  readonly metrics: RuntimeMetrics;
  #options: ManagerOptions;
  #elector: LeaderElector;
  #logger: Logger;
  #controllers: Controller[] = [];
  #informers = new Map<string, Informer>();
  #state: State = 'new';
  #leading = false;
  #http: OpsServer | undefined;
  #address: AddressInfo | undefined;
  #abort = new AbortController();
  #stopping: Promise<void> | undefined;
  #done: Promise<ManagerExit>;
  #resolveDone!: (exit: ManagerExit) => void;

  constructor(options: ManagerOptions) {
    this.#options = options;
    this.#elector = options.elector ?? new AlwaysLeader();
    this.#logger = options.logger ?? silentLogger;
    this.metrics = new RuntimeMetrics(options.registry);
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  /** Resolves once the manager has fully stopped, saying why. */
  get done(): Promise<ManagerExit> {
    return this.#done;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** The ops server's address once started. */
  get address(): AddressInfo | undefined {
    return this.#address;
  }

  add(spec: ControllerSpec): Controller {
    if (this.#state !== 'new') throw new Error(`controller ${spec.name} added after the manager started`);
    if (this.#controllers.some((c) => c.name === spec.name))
      throw new Error(`duplicate controller ${spec.name}`);
    const controller = new Controller(spec, {
      informer: (kind) => this.informer(kind),
      metrics: this.metrics,
      logger: this.#logger,
    });
    this.#controllers.push(controller);
    for (const kind of controller.kinds()) this.informer(kind);
    return controller;
  }

  /** The shared cache of a kind (reconcilers read through it); started with the manager. */
  informer<T extends Resource = Resource>(kind: ResourceKind): Informer<T> {
    const key = resourceKey(kind);
    let informer = this.#informers.get(key);
    if (!informer) {
      informer = new Informer(this.#options.store, kind, {
        ...this.#options.informer,
        namespace: kind.namespaced ? this.#options.namespace : undefined,
        logger: this.#logger,
      });
      informer.on('restart', ({ reason }) => this.metrics.informerRestarts.inc({ kind: kind.kind, reason }));
      informer.on('relist', ({ reason }) => this.metrics.informerRelists.inc({ kind: kind.kind, reason }));
      this.#informers.set(key, informer);
      if (this.#state === 'running') informer.start();
    }
    return informer as unknown as Informer<T>;
  }

  /** Starts the ops server and informers, then campaigns for leadership (resolves without waiting for it). */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('the manager was already started');
    this.#state = 'running';
    if (this.#options.http) {
      this.#http = new OpsServer({
        ...this.#options.http,
        registry: this.#options.registry,
        healthy: () => (this.#state === 'running' ? undefined : `manager is ${this.#state}`),
        ready: () => this.#notReady(),
      });
      this.#address = await this.#http.listen();
    }
    for (const informer of this.#informers.values()) informer.start();
    this.#logger.info({ identity: this.#elector.identity }, 'campaigning for leadership');
    this.#elector
      .run(
        () => this.#onStartedLeading(),
        (reason) => this.#onStoppedLeading(reason),
      )
      .catch((error: unknown) => {
        this.#logger.error(errorFields(error), 'leader election failed');
        void this.#shutdown({ reason: 'elector-failed', error });
      });
  }

  /** Graceful stop; resolves when done (same as `done`). */
  async stop(): Promise<void> {
    await this.#shutdown({ reason: 'stopped' });
  }

  #notReady(): string | undefined {
    if (this.#state !== 'running') return `manager is ${this.#state}`;
    const waiting = [...this.#informers.values()].filter((i) => !i.hasSynced).map((i) => i.kind.kind);
    return waiting.length > 0 ? `caches not synced: ${waiting.join(', ')}` : undefined;
  }

  #onStartedLeading(): void {
    if (this.#state !== 'running') return;
    this.#leading = true;
    this.metrics.leader.set(1);
    this.#logger.info({ identity: this.#elector.identity }, 'leading: starting controllers');
    for (const c of this.#controllers) {
      c.start(this.#abort.signal).catch((error: unknown) => {
        if (this.#state === 'running') {
          this.#logger.error({ controller: c.name, ...errorFields(error) }, 'controller failed to start');
        }
      });
    }
  }

  #onStoppedLeading(reason = 'unknown'): void {
    const wasLeading = this.#leading;
    this.#leading = false;
    this.metrics.leader.set(0);
    if (this.#state === 'running') {
      this.#logger.error(
        { identity: this.#elector.identity, wasLeading, reason },
        'leadership lost: stopping',
      );
      void this.#shutdown({ reason: 'leadership-lost' });
    }
  }

  #shutdown(exit: ManagerExit): Promise<void> {
    this.#stopping ??= this.#teardown(exit);
    return this.#stopping;
  }

  async #teardown(exit: ManagerExit): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped';
      this.#resolveDone(exit);
      return;
    }
    this.#state = 'stopping';
    this.#abort.abort(new Error(`manager ${exit.reason}`));
    if (exit.reason !== 'stopped') for (const c of this.#controllers) c.abort(exit.reason);
    const drained = Promise.all(this.#controllers.map((c) => c.stop())).then(() => true);
    const timeoutMs = this.#options.shutdownTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    if (!(await Promise.race([drained, deadline]))) {
      this.#logger.warn({ timeoutMs }, 'in-flight reconciles did not finish in time; aborting them');
      for (const c of this.#controllers) c.abort('shutdown deadline passed');
    }
    clearTimeout(timer);
    // Leadership goes only after our reconciles are done, so a successor never overlaps with them.
    await this.#elector.release().catch((error: unknown) => {
      this.#logger.warn(errorFields(error), 'releasing leadership failed');
    });
    this.#leading = false;
    this.metrics.leader.set(0);
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
    await this.#http?.close();
    this.#state = 'stopped';
    this.#logger.info({ reason: exit.reason }, 'manager stopped');
    this.#resolveDone(exit);
  }
}
