// A Talos side (TalosMachineConfig controller, config server, event sink, hooks) over a store seeded
// with the fleet, with every log line captured, for the delivery and event-sink tests.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { ControllerDeps } from '../../../src/controllers/index.ts';
import { StoreEventRecorder } from '../../../src/runtime/events.ts';
import type { ResourceStore } from '../../../src/runtime/store.ts';
import { MemoryStore } from '../../../src/stores/memory.ts';
import { parseTalosConfig } from '../../../src/talos/config.ts';
import { buildTalos, type TalosSide } from '../../../src/talos/family.ts';
import type { Host } from '../../../src/talos/host-status.ts';
import { HOST_KIND } from '../../../src/talos/kinds.ts';
import { NAMESPACE, seedStore } from '../../fixtures/talos/store.ts';

export interface Harness {
  store: ResourceStore;
  talos: TalosSide;
  events: StoreEventRecorder;
  registry: Registry;
  /** Every log line written so far (pino JSON). */
  logs: string[];
  host(name: string): Promise<Host>;
  /** Sets status.provisioning as the host controller would. */
  setState(name: string, state: string, attempt?: number): Promise<void>;
  /** Runs the TalosMachineConfig reconcile (renders changed hosts). */
  render(): Promise<void>;
  /** Waits until the config server's host cache shows `test` true for the host. */
  cached(name: string, test: (h: Host) => boolean): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  options: { store?: ResourceStore; talos?: Record<string, unknown>; seed?: boolean } = {},
): Promise<Harness> {
  const store = options.store ?? new MemoryStore();
  if (options.seed !== false) await seedStore(store);
  const logs: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );
  const events = new StoreEventRecorder({ store, component: 'metalbox-test', logger });
  const registry = new Registry();
  const deps: ControllerDeps = { store, events, logger, registry, namespace: NAMESPACE, config: {} };
  const talos = await buildTalos(
    deps,
    parseTalosConfig({
      configServer: { listen: '127.0.0.1:0' },
      eventSink: { listen: '127.0.0.1:0' },
      ...options.talos,
    }),
  );
  const render = async () => {
    await talos.controller.reconcile(
      { key: `${NAMESPACE}/mycluster`, namespace: NAMESPACE, name: 'mycluster' },
      { signal: new AbortController().signal, logger },
    );
  };
  await render();
  const host = (name: string) => store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name });
  const cached = async (name: string, test: (h: Host) => boolean) => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const h = talos.hosts.get({ namespace: NAMESPACE, name });
      if (h && test(h)) return;
      if (Date.now() > deadline) throw new Error(`host cache never showed the expected ${name}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return {
    store,
    talos,
    events,
    registry,
    logs,
    host,
    render,
    async setState(name, state, attempt = 1) {
      await store.patchStatus(
        HOST_KIND,
        { namespace: NAMESPACE, name },
        { provisioning: { state, attempt } },
      );
      await cached(name, (h) => h.status?.provisioning?.state === state);
    },
    cached,
    async close() {
      await talos.stop();
      await events.flush();
    },
  };
}
