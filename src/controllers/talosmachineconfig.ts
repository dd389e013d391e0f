// The TalosMachineConfig controller: for every BareMetalHost that refers to a TalosMachineConfig
// (spec.talosConfigRef), render the host's machine config into a Secret owned by the host, put only
// the config's sha256 into the host's status.talos.configHash, and report on the TalosMachineConfig
// (condition Rendered, status.hosts). A host whose inputs did not change is not rendered again, so
// a change to one host's address re-renders and rewrites only that host.
import { createHash } from 'node:crypto';
import type { BareMetalHost } from '../crds/baremetalhost.ts';
import {
  TALOS_CONDITIONS,
  type TalosMachineConfig,
  type TalosMachineConfigStatus,
  type TalosPatch,
} from '../crds/talosmachineconfig.ts';
import { type Condition, findCondition, setCondition } from '../runtime/conditions.ts';
import type { ControllerSpec, ReconcileRequest } from '../runtime/controller.ts';
import { isNotFound } from '../runtime/errors.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { withHealth } from '../runtime/health.ts';
import {
  apiVersionOf,
  type ObjectRef,
  objectKey,
  type Resource,
  refOf,
  timestamp,
} from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { isTalosConfigError, TalosConfigError } from '../talos/errors.ts';
import { changeHostStatus, type HostStatusChange } from '../talos/host-status.ts';
import {
  CONFIG_KEY,
  HASH_ANNOTATION,
  HOST_KIND,
  RENDERED_LABEL,
  renderedSecretName,
  SECRET_KIND,
  type SecretObject,
  SOURCE_ANNOTATION,
  secretText,
  TALOS_CONFIG_KIND,
} from '../talos/kinds.ts';
import type { TalosMetrics } from '../talos/metrics.ts';
import { type RenderInput, renderHostConfig, type Source } from '../talos/render.ts';
import { CONFIG_CONDITIONS } from './baremetalhost/hooks.ts';

type Host = BareMetalHost & Resource;
type Tmc = TalosMachineConfig & Resource;

export interface TalosMachineConfigControllerOptions {
  store: ResourceStore;
  events: EventRecorder;
  metrics: TalosMetrics;
  /** `host:port` of the event sink, written into every config (EventSinkConfig). */
  eventSinkEndpoint?: string;
  workers?: number;
  now?: () => Date;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const MAX_MESSAGE = 4000;

/** Reads Secret keys for one reconcile; each error names the spec field that points at the Secret. */
class SecretReader {
  #store: ResourceStore;
  #namespace: string;
  #cache = new Map<string, Promise<SecretObject | undefined>>();
  constructor(store: ResourceStore, namespace: string) {
    this.#store = store;
    this.#namespace = namespace;
  }

  async text(name: string, key: string, field: string): Promise<string> {
    let pending = this.#cache.get(name);
    if (!pending) {
      pending = this.#store
        .get<SecretObject>(SECRET_KIND, { namespace: this.#namespace, name })
        .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
      this.#cache.set(name, pending);
    }
    const secret = await pending;
    if (!secret) throw new TalosConfigError(field, `Secret ${this.#namespace}/${name} does not exist`);
    const text = secretText(secret, key);
    if (text === undefined)
      throw new TalosConfigError(field, `Secret ${this.#namespace}/${name} has no key "${key}"`);
    return text;
  }
}

function resolvePatch(reader: SecretReader, patch: TalosPatch, field: string): Promise<Source> {
  if (patch.inline !== undefined) return Promise.resolve({ text: patch.inline, field: `${field}.inline` });
  const ref = patch.secretRef!;
  const at = `${field}.secretRef`;
  return reader.text(ref.name, ref.key, at).then((text) => ({ text, field: at }));
}

/** Secret names a TalosMachineConfig reads, for mapping Secret changes back to it. */
function referencedSecrets(tmc: Tmc): string[] {
  const names = [tmc.spec.baseConfigSecretRef.name];
  const all = [
    ...(tmc.spec.patches?.all ?? []),
    ...(tmc.spec.patches?.controlplane ?? []),
    ...(tmc.spec.patches?.worker ?? []),
    ...(tmc.spec.hostPatches ?? []).flatMap((h) => h.patches),
  ];
  for (const p of all) if (p.secretRef) names.push(p.secretRef.name);
  return [...new Set(names)];
}

export function talosMachineConfigController(options: TalosMachineConfigControllerOptions): ControllerSpec {
  const { store, events, metrics } = options;
  const now = options.now ?? (() => new Date());
  /** `namespace/secret` → keys of the TalosMachineConfigs that read it. */
  const secretReferrers = new Map<string, Set<string>>();
  /** `namespace/host` → the inputs fingerprint and hash of its last good render. */
  const rendered = new Map<string, { fingerprint: string; hash: string }>();

  function remember(tmcKey: string, namespace: string, names: string[]): void {
    for (const set of secretReferrers.values()) set.delete(tmcKey);
    for (const name of names) {
      const key = `${namespace}/${name}`;
      const set = secretReferrers.get(key) ?? new Set<string>();
      set.add(tmcKey);
      secretReferrers.set(key, set);
    }
  }

  function secretToConfigs(secret: Resource): ObjectRef[] {
    const namespace = secret.metadata.namespace ?? '';
    const refs: ObjectRef[] = [];
    for (const key of secretReferrers.get(`${namespace}/${secret.metadata.name}`) ?? []) {
      refs.push({ namespace, name: key.slice(key.indexOf('/') + 1) });
    }
    // A rendered Secret changed or vanished: its TalosMachineConfig puts it right.
    const source = secret.metadata.annotations?.[SOURCE_ANNOTATION];
    if (source && secret.metadata.labels?.[RENDERED_LABEL]) refs.push({ namespace, name: source });
    return refs;
  }

  async function writeSecret(
    tmc: Tmc,
    host: Host,
    config: string,
    hash: string,
    existing: SecretObject | undefined,
  ) {
    const namespace = host.metadata.namespace ?? '';
    const name = renderedSecretName(host.metadata.name);
    const desired: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        ...(existing?.metadata ?? {}),
        name,
        namespace,
        labels: { ...(existing?.metadata.labels ?? {}), [RENDERED_LABEL]: host.metadata.name },
        annotations: {
          ...(existing?.metadata.annotations ?? {}),
          [HASH_ANNOTATION]: hash,
          [SOURCE_ANNOTATION]: tmc.metadata.name,
        },
        ownerReferences: [
          {
            apiVersion: apiVersionOf(HOST_KIND),
            kind: HOST_KIND.kind,
            name: host.metadata.name,
            uid: host.metadata.uid ?? '',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      type: 'Opaque',
      data: { [CONFIG_KEY]: Buffer.from(config).toString('base64') },
    };
    if (existing) await store.update(SECRET_KIND, desired);
    else await store.create(SECRET_KIND, desired);
    metrics.secretWrites.inc({ action: existing ? 'update' : 'create' });
  }

  /**
   * The host's config hash, and its ConfigRendered condition: False with the render error while
   * its config does not render, so the host itself says why its install cannot go on.
   */
  async function setHostConfig(
    host: Host,
    tmc: string,
    hash: string | null,
    failure?: string,
  ): Promise<void> {
    const want =
      failure === undefined
        ? { status: 'True' as const, reason: 'Rendered', message: `rendered from TalosMachineConfig ${tmc}` }
        : { status: 'False' as const, reason: 'RenderFailed', message: failure.slice(0, MAX_MESSAGE) };
    await changeHostStatus(store, refOf(host), (current) => {
      const change: HostStatusChange = {};
      const stored = current.status?.talos?.configHash ?? null;
      if (stored !== hash && !(hash === null && current.status?.talos === undefined))
        change.talos = { configHash: hash };
      const c = findCondition(current.status?.conditions, CONFIG_CONDITIONS.rendered);
      if (
        c?.status !== want.status ||
        c.reason !== want.reason ||
        c.message !== want.message ||
        c.observedGeneration !== (current.metadata.generation ?? 0)
      )
        change.conditions = [{ type: CONFIG_CONDITIONS.rendered, ...want }];
      return change.talos || change.conditions ? change : undefined;
    });
  }

  async function reconcile(req: ReconcileRequest) {
    const namespace = req.namespace ?? '';
    let tmc: Tmc;
    try {
      tmc = await store.get<Tmc>(TALOS_CONFIG_KIND, req);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      remember(req.key, namespace, []);
      return;
    }
    remember(req.key, namespace, referencedSecrets(tmc));
    const generation = tmc.metadata.generation ?? 0;
    const reader = new SecretReader(store, namespace);
    const hosts = (await store.list<Host>(HOST_KIND, { namespace })).items
      .filter((h) => h.spec.talosConfigRef?.name === tmc.metadata.name)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));

    const { hostPatches: _all, ...sharedSpec } = tmc.spec;
    const baseRef = tmc.spec.baseConfigSecretRef;
    const previous = new Map((tmc.status?.hosts ?? []).map((h) => [h.host, h]));
    const results: NonNullable<TalosMachineConfigStatus['hosts']> = [];
    const failures = new Map<string, string[]>();

    for (const host of hosts) {
      const role = host.spec.role;
      const hostKey = objectKey({ namespace, name: host.metadata.name });
      const secretName = renderedSecretName(host.metadata.name);
      try {
        const key = role === 'controlplane' ? baseRef.controlplaneKey : baseRef.workerKey;
        const baseField = `spec.baseConfigSecretRef (Secret ${namespace}/${baseRef.name} key ${key})`;
        const base = {
          text: await reader.text(baseRef.name, key, 'spec.baseConfigSecretRef'),
          field: baseField,
        };
        const rolePatches: Source[] = [];
        for (const [group, list] of [
          ['all', tmc.spec.patches?.all],
          [role, tmc.spec.patches?.[role]],
        ] as const) {
          for (const [i, p] of (list ?? []).entries()) {
            rolePatches.push(await resolvePatch(reader, p, `spec.patches.${group}[${i}]`));
          }
        }
        const hostIndex = (tmc.spec.hostPatches ?? []).findIndex((h) => h.host === host.metadata.name);
        const hostPatches: Source[] = [];
        for (const [j, p] of (tmc.spec.hostPatches?.[hostIndex]?.patches ?? []).entries()) {
          hostPatches.push(await resolvePatch(reader, p, `spec.hostPatches[${hostIndex}].patches[${j}]`));
        }
        const input: RenderInput = {
          host: { name: host.metadata.name, spec: host.spec },
          spec: tmc.spec,
          base,
          rolePatches,
          hostPatches,
          ...(options.eventSinkEndpoint ? { eventSinkEndpoint: options.eventSinkEndpoint } : {}),
        };
        const fingerprint = sha256(
          JSON.stringify({
            spec: sharedSpec,
            sources: [base, ...rolePatches, ...hostPatches].map((s) => [s.field, sha256(s.text)]),
            host: [role, host.spec.bootMACAddress, host.spec.network ?? null, host.spec.installDisk ?? null],
            sink: options.eventSinkEndpoint ?? null,
          }),
        );
        const render = () => {
          const out = renderHostConfig(input);
          metrics.renders.inc({ result: 'ok' });
          return out;
        };
        const cached = rendered.get(hostKey);
        let output = cached?.fingerprint === fingerprint ? undefined : render();
        const hash = output?.hash ?? cached!.hash;
        const existing = await store
          .get<SecretObject>(SECRET_KIND, { namespace, name: secretName })
          .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
        const current =
          existing?.metadata.annotations?.[HASH_ANNOTATION] === hash &&
          existing.metadata.annotations?.[SOURCE_ANNOTATION] === tmc.metadata.name &&
          existing.metadata.ownerReferences?.some((o) => o.uid === host.metadata.uid) === true &&
          secretText(existing, CONFIG_KEY) !== undefined;
        let lastRenderTime = previous.get(host.metadata.name)?.lastRenderTime;
        if (!current) {
          output ??= render();
          await writeSecret(tmc, host, output.config, output.hash, existing);
          lastRenderTime = timestamp(now());
        }
        rendered.set(hostKey, { fingerprint, hash });
        await setHostConfig(host, tmc.metadata.name, hash);
        results.push({
          host: host.metadata.name,
          secretName,
          observedGeneration: generation,
          ...(lastRenderTime ? { lastRenderTime } : {}),
        });
      } catch (error) {
        if (!isTalosConfigError(error)) throw error;
        metrics.renders.inc({ result: 'error' });
        rendered.delete(hostKey);
        // A config that no longer renders must not be served: the config server serves only
        // the Secret whose hash the host's status names.
        await setHostConfig(host, tmc.metadata.name, null, error.message);
        const list = failures.get(error.message) ?? [];
        list.push(host.metadata.name);
        failures.set(error.message, list);
      }
    }

    await deleteStale(tmc, namespace, new Set(hosts.map((h) => h.metadata.name)));
    await writeStatus(tmc, generation, hosts.length, results, failures);
  }

  async function deleteStale(tmc: Tmc, namespace: string, hosts: Set<string>): Promise<void> {
    const secrets = (await store.list<SecretObject>(SECRET_KIND, { namespace })).items;
    for (const s of secrets) {
      const host = s.metadata.labels?.[RENDERED_LABEL];
      if (!host || s.metadata.annotations?.[SOURCE_ANNOTATION] !== tmc.metadata.name || hosts.has(host))
        continue;
      try {
        await store.delete(
          SECRET_KIND,
          { namespace, name: s.metadata.name },
          {
            preconditions: { resourceVersion: s.metadata.resourceVersion },
          },
        );
        metrics.secretWrites.inc({ action: 'delete' });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      rendered.delete(objectKey({ namespace, name: host }));
    }
  }

  async function writeStatus(
    tmc: Tmc,
    generation: number,
    total: number,
    hosts: NonNullable<TalosMachineConfigStatus['hosts']>,
    failures: Map<string, string[]>,
  ): Promise<void> {
    const failed = [...failures.values()].reduce((n, l) => n + l.length, 0);
    let message = failed
      ? [...failures.entries()].map(([msg, names]) => `${names.join(', ')}: ${msg}`).join('; ')
      : `${total} host${total === 1 ? '' : 's'} rendered`;
    if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE - 3)}...`;
    const before = findCondition(
      tmc.status?.conditions as Condition[] | undefined,
      TALOS_CONDITIONS.rendered,
    );
    const rendered = {
      type: TALOS_CONDITIONS.rendered,
      status: failed ? 'False' : 'True',
      reason: failed ? 'RenderFailed' : 'Rendered',
      message,
      observedGeneration: generation,
    } as const;
    // A render that fails fails again until a person changes the spec, a patch or the base Secret.
    const conditions = withHealth(
      setCondition(tmc.status?.conditions as Condition[] | undefined, rendered, now()),
      { state: failed ? 'stalled' : 'ready', reason: rendered.reason, message },
      generation,
      now(),
    );
    const status: TalosMachineConfigStatus = {
      ...(tmc.status ?? {}),
      observedGeneration: generation,
      hosts,
      conditions,
    };
    if (failed && before?.message !== message) events.event(tmc, 'Warning', 'RenderFailed', message);
    if (JSON.stringify(status) === JSON.stringify(tmc.status ?? {})) return;
    await store.updateStatus(TALOS_CONFIG_KIND, { ...tmc, status });
  }

  return {
    name: 'talosmachineconfig',
    for: TALOS_CONFIG_KIND,
    watches: [
      {
        kind: HOST_KIND,
        map: (obj) => {
          const ref = (obj as Host).spec?.talosConfigRef?.name;
          return ref ? [{ namespace: obj.metadata.namespace ?? '', name: ref }] : [];
        },
      },
      { kind: SECRET_KIND, map: secretToConfigs },
    ],
    workers: options.workers ?? 2,
    reconcile,
  };
}
