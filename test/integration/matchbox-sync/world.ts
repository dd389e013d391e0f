// A running Matchbox sync for integration tests: a real store (kube-apiserver or the embedded SQLite store),
// the real Matchbox pair, and the profile/group controllers in a runtime Manager in this process.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import {
  type MatchboxSyncConfig,
  parseMatchboxSyncConfig,
} from '../../../src/controllers/matchbox/config.ts';
import { buildMatchboxSync, type MatchboxSync } from '../../../src/controllers/matchbox/family.ts';
import {
  GroupKind,
  type GroupObject,
  ProfileKind,
  type ProfileObject,
} from '../../../src/controllers/matchbox/kinds.ts';
import { SecretKind } from '../../../src/controllers/matchbox/secrets.ts';
import type { EndpointStatus } from '../../../src/controllers/matchbox/status.ts';
import { allCrds } from '../../../src/crds/crd.ts';
import { validateObject } from '../../../src/crds/validate.ts';
import { MatchboxClient } from '../../../src/matchbox/client.ts';
import { isNotFound } from '../../../src/runtime/errors.ts';
import { type CoreEvent, EventKind, StoreEventRecorder } from '../../../src/runtime/events.ts';
import type { Logger } from '../../../src/runtime/logger.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import type { Resource, ResourceKind } from '../../../src/runtime/resource.ts';
import type { ResourceStore } from '../../../src/runtime/store.ts';
import { KubeStore } from '../../../src/stores/kube.ts';
import { SqliteStore } from '../../../src/stores/sqlite.ts';
import { type CrdLike, type KubeApiserverPeer, startKubeApiserver } from '../../env/kube.ts';
import type { MatchboxPeer, startMatchboxPair } from '../../env/matchbox.ts';
import { scratchDir } from '../../env/peers.ts';
import { waitFor } from '../../env/wait.ts';

export const NAMESPACE = 'metalbox-system';

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string | undefined;
  fields: Record<string, unknown>;
}

/** A logger that keeps every entry, so tests can assert what an operator would read. */
export function recordingLogger(): Logger & { entries: LogEntry[]; text(): string } {
  const entries: LogEntry[] = [];
  const log = (level: LogEntry['level']) => (obj: object, msg?: string) => {
    entries.push({ level, msg, fields: obj as Record<string, unknown> });
  };
  return {
    entries,
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    text: () => entries.map((e) => `${e.level} ${e.msg ?? ''} ${JSON.stringify(e.fields)}`).join('\n'),
  };
}

/** A backing store for the world: a real kube-apiserver, or the embedded SQLite store. */
export interface StoreBackend {
  store: ResourceStore;
  kind: 'kube' | 'file';
  close(): Promise<void>;
}

export async function startKubeBackend(): Promise<StoreBackend & { kube: KubeApiserverPeer }> {
  const kube = await startKubeApiserver();
  try {
    await kube.installCRDs(allCrds() as unknown as CrdLike[]);
    const ns = await kube.request('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NAMESPACE },
    });
    assert.equal(ns.status, 201, JSON.stringify(ns.body));
  } catch (error) {
    await kube.stop();
    throw error;
  }
  const store = new KubeStore({ kubeConfig: kube.kubeConfig(), fieldManager: 'metalbox-matchbox-sync-test' });
  return {
    store,
    kind: 'kube',
    kube,
    async close() {
      await store.close();
      await kube.stop();
    },
  };
}

export async function startFileBackend(): Promise<StoreBackend> {
  const dir = scratchDir('matchbox-sync-store');
  const store = await SqliteStore.open(dir.dir, { durable: false });
  return {
    store,
    kind: 'file',
    async close() {
      await store.close();
      dir.remove();
    },
  };
}

export type Pair = Awaited<ReturnType<typeof startMatchboxPair>>;

/** Client credentials of the pair as a Secret (ca.crt, tls.crt, tls.key). */
export function credentialsSecret(pair: Pair, name = 'matchbox-client') {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NAMESPACE },
    type: 'Opaque',
    data: {
      'ca.crt': b64(pair.pki.ca.cert),
      'tls.crt': b64(pair.pki.client.cert),
      'tls.key': b64(pair.pki.client.key),
    },
  };
}

/** The `matchbox:` config section for the pair: a through the Secret, b through files. */
export function pairConfig(pair: Pair, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    endpoints: [
      {
        name: 'a',
        endpoint: pair.a.rpcEndpoint,
        httpURL: pair.a.httpURL,
        tls: { secretRef: { namespace: NAMESPACE, name: 'matchbox-client' } },
        timeoutSeconds: 5,
      },
      {
        name: 'b',
        endpoint: pair.b.rpcEndpoint,
        httpURL: pair.b.httpURL,
        tls: {
          caFile: pair.pki.ca.certFile,
          certFile: pair.pki.client.certFile,
          keyFile: pair.pki.client.keyFile,
        },
        timeoutSeconds: 5,
      },
    ],
    driftScanIntervalSeconds: 3600,
    verifyBootAnswers: true,
    ...overrides,
  };
}

export interface SyncWorld {
  store: ResourceStore;
  manager: Manager;
  sync: MatchboxSync;
  config: MatchboxSyncConfig;
  logs: ReturnType<typeof recordingLogger>;
  registry: Registry;
  events: StoreEventRecorder;
  stop(): Promise<void>;
}

/** Builds the Matchbox sync from `section` and runs its controllers in a Manager on `store`. */
export async function startSync(store: ResourceStore, section: Record<string, unknown>): Promise<SyncWorld> {
  const logs = recordingLogger();
  const registry = new Registry();
  const events = new StoreEventRecorder({ store, component: 'metalbox-test', logger: logs });
  const config = parseMatchboxSyncConfig(section);
  const sync = buildMatchboxSync(
    { store, events, logger: logs, registry, namespace: NAMESPACE, config: { matchbox: section } },
    config,
  );
  const manager = new Manager({
    store,
    registry,
    logger: logs,
    namespace: NAMESPACE,
    shutdownTimeoutMs: 10_000,
  });
  for (const spec of sync.controllers) manager.add(spec);
  await manager.start();
  return {
    store,
    manager,
    sync,
    config,
    logs,
    registry,
    events,
    async stop() {
      await manager.stop();
      await sync.stop();
      await events.flush();
      // METALBOX_DUMP_LOGS=1 shows what the controllers logged, for debugging a failing test.
      if (process.env.METALBOX_DUMP_LOGS) process.stderr.write(`${logs.text()}\n`);
    },
  };
}

/** A client per peer, as a test reads Matchbox directly. */
export function clientFor(pair: Pair, peer: MatchboxPeer): MatchboxClient {
  return new MatchboxClient({
    endpoint: peer.rpcEndpoint,
    tls: { ca: pair.pki.ca.cert, cert: pair.pki.client.cert, key: pair.pki.client.key },
    timeoutMs: 5_000,
  });
}

const manifestsDir = new URL('../../../manifests/', import.meta.url);

/** The seed's MatchboxProfiles and MatchboxGroups, validated (defaults applied) as a store would. */
export function seedManifests(): Resource[] {
  const out: Resource[] = [];
  for (const file of ['matchboxprofiles.yaml', 'static-groups/matchboxgroups.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, manifestsDir), 'utf8'))) {
      const result = validateObject(doc.toJS());
      assert.ok(result.ok, `${file}: ${JSON.stringify(!result.ok && result.errors)}`);
      out.push(result.object as unknown as Resource);
    }
  }
  return out;
}

export function kindOf(obj: { kind: string }): ResourceKind {
  if (obj.kind === 'MatchboxProfile') return ProfileKind;
  if (obj.kind === 'MatchboxGroup') return GroupKind;
  if (obj.kind === 'Secret') return SecretKind;
  throw new Error(`no kind ${obj.kind}`);
}

export async function apply(store: ResourceStore, objects: readonly Resource[]): Promise<void> {
  for (const obj of objects) await store.create(kindOf(obj), obj);
}

/** Reads, changes and writes an object (retrying on conflicts with the controllers' writes). */
export async function update<T extends Resource>(
  store: ResourceStore,
  kind: ResourceKind,
  name: string,
  change: (obj: T) => void,
): Promise<T> {
  for (let i = 0; ; i++) {
    const obj = await store.get<T>(kind, { namespace: NAMESPACE, name });
    change(obj);
    try {
      return await store.update(kind, obj);
    } catch (error) {
      if (i > 10) throw error;
    }
  }
}

export async function getOrUndefined<T extends Resource>(
  store: ResourceStore,
  kind: ResourceKind,
  name: string,
): Promise<T | undefined> {
  try {
    return await store.get<T>(kind, { namespace: NAMESPACE, name });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export function condition(obj: ProfileObject | GroupObject | undefined, type: string) {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

export function endpointEntry(
  obj: ProfileObject | GroupObject | undefined,
  address: string,
): EndpointStatus | undefined {
  return obj?.status?.endpoints?.find((e) => e.endpoint === address);
}

/** Waits until every listed object is Synced=True at its current generation. */
export async function waitAllSynced(
  store: ResourceStore,
  what = 'every object Synced',
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    async () => {
      for (const kind of [ProfileKind, GroupKind]) {
        const { items } = await store.list<ProfileObject>(kind, { namespace: NAMESPACE });
        for (const obj of items) {
          const c = condition(obj, 'Synced');
          if (c?.status !== 'True' || c.observedGeneration !== obj.metadata.generation) return false;
        }
      }
      return true;
    },
    { what, timeoutMs, intervalMs: 200 },
  );
}

export async function eventsFor(store: ResourceStore, name: string, reason?: string): Promise<CoreEvent[]> {
  const { items } = await store.list<CoreEvent>(EventKind, { namespace: NAMESPACE });
  return items.filter((e) => e.involvedObject.name === name && (reason === undefined || e.reason === reason));
}

/** The value of a counter in the registry (summed over series matching `labels`). */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
