// Protects BMCs from metalbox and metalbox from BMCs. BMCs are small embedded computers: many lock up or
// drop sessions when several clients talk to them at once, so operations on one BMC are serialised
// (default one at a time) under a global cap. A BMC that keeps failing gets a circuit breaker: after N
// consecutive failures operations fail fast with CircuitOpenError for a backoff period, then one trial
// operation decides whether it closes again. Circuit state is exported as a metric.
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BmcError, CircuitOpenError } from './errors.ts';

export interface ProtectionOptions {
  /** Metrics go here; none are exported when absent. */
  registry?: Registry;
  /** Operations at once on one BMC (default 1). */
  perBmcConcurrency?: number;
  /** Operations at once across all BMCs (default 32). */
  globalConcurrency?: number;
  /** Consecutive failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** First open period; doubles on each failed trial up to maxOpenMs (default 30 s). */
  openMs?: number;
  /** Longest open period (default 10 min). */
  maxOpenMs?: number;
  logger?: Logger;
  /** Clock, for tests. */
  now?: () => number;
}

export interface ProtectedBmc {
  /** host:port: the identity that is limited and circuit-broken. */
  key: string;
  /** For messages. */
  display: string;
  protocol: 'redfish' | 'ipmi';
}

export type CircuitState = 'closed' | 'open' | 'halfOpen';
const circuitGaugeValue: Record<CircuitState, number> = { closed: 0, halfOpen: 1, open: 2 };

/** FIFO counting semaphore. */
class Semaphore {
  private available: number;
  private readonly size: number;
  private readonly waiters: (() => void)[] = [];
  constructor(size: number) {
    this.available = size;
    this.size = size;
  }
  /** Nobody holds or waits for it. */
  get idle(): boolean {
    return this.available === this.size && this.waiters.length === 0;
  }
  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.available++;
  }
}

interface Circuit {
  state: CircuitState;
  failures: number;
  openUntil: number;
  openMs: number;
  trialInFlight: boolean;
  lastError?: string;
}

interface Metrics {
  circuit: Gauge<'bmc'>;
  operations: Counter<'bmc' | 'operation' | 'result'>;
  duration: Histogram<'protocol' | 'operation'>;
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  return {
    circuit: metric(
      registry,
      'metalbox_bmc_circuit_state',
      () =>
        new Gauge({
          name: 'metalbox_bmc_circuit_state',
          help: 'Circuit breaker state per BMC: 0 closed, 1 half-open (trial running), 2 open (failing fast)',
          labelNames: ['bmc'],
          registers,
        }),
    ),
    operations: metric(
      registry,
      'metalbox_bmc_operations_total',
      () =>
        new Counter({
          name: 'metalbox_bmc_operations_total',
          help: 'BMC operations by outcome: success, failure, or rejected (circuit open)',
          labelNames: ['bmc', 'operation', 'result'],
          registers,
        }),
    ),
    duration: metric(
      registry,
      'metalbox_bmc_operation_duration_seconds',
      () =>
        new Histogram({
          name: 'metalbox_bmc_operation_duration_seconds',
          help: 'Duration of BMC operations (excluding time queued behind other operations on the same BMC)',
          labelNames: ['protocol', 'operation'],
          buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
          registers,
        }),
    ),
  };
}

export class BmcProtection {
  private readonly perBmc = new Map<string, Semaphore>();
  private readonly circuits = new Map<string, Circuit>();
  private readonly global: Semaphore;
  private readonly perBmcConcurrency: number;
  private readonly failureThreshold: number;
  private readonly openMs: number;
  private readonly maxOpenMs: number;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  private readonly metrics: Metrics | undefined;

  constructor(options: ProtectionOptions = {}) {
    this.perBmcConcurrency = options.perBmcConcurrency ?? 1;
    this.global = new Semaphore(options.globalConcurrency ?? 32);
    this.failureThreshold = options.failureThreshold ?? 5;
    this.openMs = options.openMs ?? 30_000;
    this.maxOpenMs = options.maxOpenMs ?? 600_000;
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
    this.metrics = options.registry ? createMetrics(options.registry) : undefined;
  }

  circuitState(key: string): CircuitState {
    return this.circuits.get(key)?.state ?? 'closed';
  }

  /** Runs one operation on a BMC under its limiter and circuit breaker. */
  async run<T>(bmc: ProtectedBmc, operation: string, fn: () => Promise<T>): Promise<T> {
    const circuit = this.circuit(bmc.key);
    // Fail fast before queueing: a dead BMC should not hold callers behind its limiter.
    this.admit(bmc, circuit, operation, false);
    const slot = this.slot(bmc.key);
    await slot.acquire();
    try {
      await this.global.acquire();
      try {
        const trial = this.admit(bmc, circuit, operation, true);
        const started = this.now();
        this.logger?.debug({ bmc: bmc.display, operation }, 'bmc operation started');
        try {
          const result = await fn();
          this.succeeded(bmc, circuit, trial);
          this.finish(bmc, operation, started, 'success');
          return result;
        } catch (error) {
          this.failed(bmc, circuit, trial, error);
          this.finish(bmc, operation, started, 'failure', error);
          throw error;
        }
      } finally {
        this.global.release();
      }
    } finally {
      slot.release();
    }
  }

  /** BMCs with a limiter or circuit (for tests: it returns to what it was when BMCs go). */
  get tracked(): number {
    return new Set([...this.perBmc.keys(), ...this.circuits.keys()]).size;
  }

  /**
   * Drops what is kept for a BMC no driver uses any more (its host was deleted or moved to
   * another BMC): limiter, circuit and metric series, so churn of hosts and BMCs never adds up.
   * A limiter still in use is kept; the BMC is tracked afresh when a driver uses it again.
   */
  async forget(key: string): Promise<void> {
    if (this.perBmc.get(key)?.idle === false) return;
    this.perBmc.delete(key);
    this.circuits.delete(key);
    if (!this.metrics) return;
    this.metrics.circuit.remove({ bmc: key });
    for (const { labels } of (await this.metrics.operations.get()).values) {
      if (labels.bmc === key) this.metrics.operations.remove(labels);
    }
  }

  // Limiters and circuits are kept per BMC while a driver uses it (see forget).
  private slot(key: string): Semaphore {
    let slot = this.perBmc.get(key);
    if (!slot) {
      slot = new Semaphore(this.perBmcConcurrency);
      this.perBmc.set(key, slot);
    }
    return slot;
  }

  private circuit(key: string): Circuit {
    let circuit = this.circuits.get(key);
    if (!circuit) {
      circuit = { state: 'closed', failures: 0, openUntil: 0, openMs: this.openMs, trialInFlight: false };
      this.circuits.set(key, circuit);
      this.metrics?.circuit.set({ bmc: key }, circuitGaugeValue.closed);
    }
    return circuit;
  }

  /** Throws CircuitOpenError unless the operation may run; returns whether it is the half-open trial. */
  private admit(bmc: ProtectedBmc, circuit: Circuit, operation: string, claim: boolean): boolean {
    if (circuit.state === 'closed') return false;
    const now = this.now();
    if (circuit.state === 'open' && now >= circuit.openUntil) {
      this.transition(bmc, circuit, 'halfOpen');
    }
    if (circuit.state === 'halfOpen' && !circuit.trialInFlight) {
      if (claim) circuit.trialInFlight = true;
      return claim;
    }
    this.metrics?.operations.inc({ bmc: bmc.key, operation, result: 'rejected' });
    const retryAfter = Math.max(0, circuit.openUntil - now);
    throw new CircuitOpenError(bmc.display, circuit.failures, retryAfter, circuit.lastError);
  }

  private succeeded(bmc: ProtectedBmc, circuit: Circuit, trial: boolean): void {
    if (trial) circuit.trialInFlight = false;
    circuit.failures = 0;
    circuit.openMs = this.openMs;
    delete circuit.lastError;
    if (circuit.state !== 'closed') this.transition(bmc, circuit, 'closed');
  }

  private failed(bmc: ProtectedBmc, circuit: Circuit, trial: boolean, error: unknown): void {
    if (trial) circuit.trialInFlight = false;
    if (error instanceof BmcError && !error.countsAgainstBmc) {
      // The BMC answered sensibly (the request was wrong); a trial that got this far proves it is alive.
      if (trial) this.succeeded(bmc, circuit, false);
      return;
    }
    circuit.failures++;
    circuit.lastError = error instanceof Error ? error.message : String(error);
    if (trial) {
      circuit.openMs = Math.min(circuit.openMs * 2, this.maxOpenMs);
      this.open(bmc, circuit);
    } else if (circuit.state === 'closed' && circuit.failures >= this.failureThreshold) {
      this.open(bmc, circuit);
    }
  }

  private open(bmc: ProtectedBmc, circuit: Circuit): void {
    circuit.openUntil = this.now() + circuit.openMs;
    this.transition(bmc, circuit, 'open');
  }

  private transition(bmc: ProtectedBmc, circuit: Circuit, state: CircuitState): void {
    const from = circuit.state;
    circuit.state = state;
    this.metrics?.circuit.set({ bmc: bmc.key }, circuitGaugeValue[state]);
    const fields = { bmc: bmc.display, from, to: state, failures: circuit.failures };
    if (state === 'open') {
      this.logger?.warn(
        { ...fields, openMs: circuit.openMs, lastError: circuit.lastError },
        'bmc circuit opened',
      );
    } else {
      this.logger?.info(fields, 'bmc circuit state changed');
    }
  }

  private finish(
    bmc: ProtectedBmc,
    operation: string,
    started: number,
    result: 'success' | 'failure',
    error?: unknown,
  ): void {
    const seconds = (this.now() - started) / 1000;
    this.metrics?.operations.inc({ bmc: bmc.key, operation, result });
    this.metrics?.duration.observe({ protocol: bmc.protocol, operation }, seconds);
    const fields = { bmc: bmc.display, operation, result, durationMs: Math.round(seconds * 1000) };
    if (error === undefined) this.logger?.debug(fields, 'bmc operation finished');
    else {
      const message = error instanceof Error ? error.message : String(error);
      this.logger?.debug({ ...fields, error: message }, 'bmc operation finished');
    }
  }
}
