import { isNotFound as isMatchboxNotFound } from '../../matchbox/errors.ts';
import { canonicalJson, type Group, type Profile, sameGroup, sameProfile } from '../../matchbox/objects.ts';
import { type Holder, holderOf } from '../../matchbox/owner.ts';
import { parseMatchboxId, RenderError, renderGroup, renderProfile } from '../../matchbox/render.ts';
import { isConflict, isNotFound as isStoreNotFound } from '../../runtime/errors.ts';
import type { EventRecorder } from '../../runtime/events.ts';
import { errorFields, type Logger } from '../../runtime/logger.ts';
import type { ResourceKind } from '../../runtime/resource.ts';
import { refOf } from '../../runtime/resource.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import type { Endpoint, EndpointPool, ObjectKindName } from './endpoints.ts';
import { deleteGroup, putGroup } from './group.ts';
import { GroupKind, type GroupObject, ProfileKind, type ProfileObject } from './kinds.ts';
import type { MatchboxSyncMetrics, RepairAction } from './metrics.ts';
import { deleteProfile, genericConfig, putProfile } from './profile.ts';
import { SecretUnavailableError } from './secrets.ts';
import {
  errorText,
  isCurrentOn,
  nextEndpointStatus,
  SELECTOR_UNIQUE,
  syncedCondition,
  withCondition,
  withoutCondition,
  withSyncHealth,
} from './status.ts';
import { adoptedEvent, endpointNames, updateStatus } from './sync.ts';

/** Objects repaired at once on one endpoint. */
const REPAIR_CONCURRENCY = 16;

export interface DriftDeps {
  store: ResourceStore;
  pool: EndpointPool;
  events: EventRecorder;
  metrics: MatchboxSyncMetrics;
  logger: Logger;
  /** The namespace metalbox manages ('' = all namespaces that hold MatchboxProfiles/Groups). */
  namespace: string;
  /** This instance's owner identity (owner.ts): only objects carrying it are repaired or deleted. */
  owner: string;
  /**
   * Per endpoint, as of its last scan: group (namespace/name) → the groups this instance does not
   * own that have the same selector. The MatchboxGroup's condition names the union over endpoints.
   */
  sharedSelectors: Map<string, Map<string, string[]>>;
}

export interface ScanSummary {
  endpoint: string;
  /** Objects on the endpoint (profiles + groups). */
  remote: number;
  /** Declared objects compared with the endpoint. */
  compared: number;
  created: number;
  updated: number;
  deleted: number;
  /** Objects whose status now records them on this endpoint again. */
  statusUpdated: number;
  /** Foreign objects seen (left alone). */
  foreign: number;
  /** Objects with metalbox ids written by another metalbox instance (left alone). */
  otherOwner: number;
  /** Objects with metalbox ids and no owner that no resource here declares (left alone). */
  unmarked: number;
  /** Unmarked objects a resource here declares, written again with this instance's owner. */
  adopted: number;
}

/** Some repairs failed; the scan is retried with backoff. */
export class DriftScanError extends Error {
  readonly failures: number;
  constructor(endpoint: Endpoint, failures: number, first: unknown) {
    super(`drift scan of Matchbox ${endpoint.label}: ${failures} repairs failed; first: ${errorText(first)}`);
    this.name = 'DriftScanError';
    this.failures = failures;
  }
}

interface Repair {
  kind: ObjectKindName;
  obj: ProfileObject | GroupObject;
  id: string;
  action: Exclude<RepairAction, 'deleted'>;
  /** Why, for the Event: what differed. */
  why: string;
  /** The remote object carried no owner: writing it adopts it. */
  adopt: boolean;
  write: () => Promise<void>;
  /** The status entry said the last write here failed: record the success. */
  catchUp: boolean;
}

export async function scanEndpoint(deps: DriftDeps, endpoint: Endpoint): Promise<ScanSummary> {
  const end = deps.metrics.driftScanDuration.startTimer({ endpoint: endpoint.name });
  try {
    const summary = await scan(deps, endpoint);
    deps.metrics.driftScans.inc({ endpoint: endpoint.name, result: 'ok' });
    return summary;
  } catch (error) {
    deps.metrics.driftScans.inc({ endpoint: endpoint.name, result: 'error' });
    throw error;
  } finally {
    end();
  }
}

async function scan(deps: DriftDeps, endpoint: Endpoint): Promise<ScanSummary> {
  const { store, namespace } = deps;
  // The endpoint first, then the store: anything on the endpoint that a resource declared when
  // it was listed is in the (newer) store list, so nothing just written is taken for an orphan.
  const [remoteProfiles, remoteGroups] = await Promise.all([
    endpoint.call('ProfileList', (c) => c.profileList()),
    endpoint.call('GroupList', (c) => c.groupList()),
  ]);
  const listOptions = namespace ? { namespace } : {};
  const [profiles, groups] = await Promise.all([
    store.list<ProfileObject>(ProfileKind, listOptions),
    store.list<GroupObject>(GroupKind, listOptions),
  ]);
  const managed = namespace
    ? new Set([namespace])
    : new Set([...profiles.items, ...groups.items].map((o) => o.metadata.namespace!));
  /** An id metalbox writes, in a namespace this instance manages (whoever wrote it). */
  const shaped = (id: string) => {
    const key = parseMatchboxId(id);
    return key !== undefined && managed.has(key.namespace);
  };
  const holder = (o: Profile | Group): Holder => holderOf(o, deps.owner);
  const summary: ScanSummary = {
    endpoint: endpoint.name,
    remote: remoteProfiles.length + remoteGroups.length,
    compared: 0,
    created: 0,
    updated: 0,
    deleted: 0,
    statusUpdated: 0,
    foreign: [...remoteProfiles, ...remoteGroups].filter((o) => !shaped(o.id)).length,
    otherOwner: 0,
    unmarked: 0,
    adopted: 0,
  };
  const failures: unknown[] = [];

  const remoteProfileById = new Map(remoteProfiles.map((p) => [p.id, p]));
  const remoteGroupById = new Map(remoteGroups.map((g) => [g.id, g]));
  const known = { profile: new Set<string>(), group: new Set<string>() };
  const repairs: Repair[] = [];
  const removals: { kind: ObjectKindName; obj: ProfileObject | GroupObject; id: string }[] = [];

  for (const obj of profiles.items) {
    let rendered: ReturnType<typeof renderProfile>;
    try {
      rendered = renderProfile(obj, deps.owner);
    } catch (error) {
      if (error instanceof RenderError) continue;
      throw error;
    }
    const id = rendered.profile.id;
    known.profile.add(id);
    const remote = remoteProfileById.get(id);
    const plan = planFor(obj, endpoint);
    if (remote && isOthers(deps, endpoint, 'profile', obj, holder(remote), plan)) continue;
    if (deletionFailedOn(obj, endpoint)) removals.push({ kind: 'profile', obj, id });
    if (!plan) continue;
    summary.compared++;
    let config: Buffer | undefined;
    try {
      config = await genericConfig(deps, rendered);
    } catch (error) {
      // The profile controller reports an unusable template; nothing to compare against.
      if (!(error instanceof SecretUnavailableError)) failures.push(error);
      continue;
    }
    const why = plan.catchUp
      ? catchUpReason(endpoint, obj)
      : await profileDrift(endpoint, remote, rendered.profile, config, failures);
    if (why === undefined) continue;
    repairs.push({
      kind: 'profile',
      obj,
      id,
      action: remote ? 'updated' : 'created',
      why,
      adopt: remote !== undefined && holder(remote) === 'unmarked',
      catchUp: plan.catchUp,
      write: () => putProfile(endpoint, rendered, config),
    });
  }
  for (const obj of groups.items) {
    let rendered: Group;
    try {
      rendered = renderGroup(obj, deps.owner);
    } catch (error) {
      if (error instanceof RenderError) continue;
      throw error;
    }
    known.group.add(rendered.id);
    const remote = remoteGroupById.get(rendered.id);
    const plan = planFor(obj, endpoint);
    if (remote && isOthers(deps, endpoint, 'group', obj, holder(remote), plan)) continue;
    if (deletionFailedOn(obj, endpoint)) removals.push({ kind: 'group', obj, id: rendered.id });
    if (!plan) continue;
    summary.compared++;
    let why: string | undefined;
    if (plan.catchUp) why = catchUpReason(endpoint, obj);
    else if (!remote) why = `was missing on Matchbox ${endpoint.label}`;
    else if (!sameGroup(remote, rendered))
      why = `differed from the declared spec on Matchbox ${endpoint.label} (${differingFields(remote, rendered)})`;
    if (why === undefined) continue;
    repairs.push({
      kind: 'group',
      obj,
      id: rendered.id,
      action: remote ? 'updated' : 'created',
      why,
      adopt: remote !== undefined && holder(remote) === 'unmarked',
      catchUp: plan.catchUp,
      write: () => putGroup(endpoint, rendered),
    });
  }

  // Profiles before groups, so a refilled group never points at a profile not yet written.
  for (const kind of ['profile', 'group'] as const) {
    await eachLimited(
      repairs.filter((r) => r.kind === kind),
      REPAIR_CONCURRENCY,
      async (r) => {
        try {
          if (await repair(deps, endpoint, r)) {
            summary[r.action]++;
            if (r.adopt) summary.adopted++;
          }
          if (r.catchUp && (await recordCatchUp(deps, endpoint, r))) summary.statusUpdated++;
        } catch (error) {
          failures.push(error);
        }
      },
    );
  }

  // Resources being deleted whose removal from this endpoint failed: remove them now and clear
  // the error, which re-queues them at once, so the finalizer goes without waiting for backoff.
  await eachLimited(removals, REPAIR_CONCURRENCY, async ({ kind, obj, id }) => {
    try {
      await endpoint.withLock(kind, id, () =>
        kind === 'group' ? deleteGroup(endpoint, id) : deleteProfile(endpoint, id),
      );
      if (await recordRemoval(deps, endpoint, kind, obj)) summary.statusUpdated++;
    } catch (error) {
      failures.push(error);
    }
  });

  // What this instance leaves alone: another instance's objects, and unmarked ones nobody here declares.
  const notOwned = { 'other-instance': [] as string[], unmarked: [] as string[] };
  for (const [kind, list] of [
    ['profile', remoteProfiles],
    ['group', remoteGroups],
  ] as const) {
    for (const o of list) {
      if (!shaped(o.id)) continue;
      const h = holder(o);
      if (typeof h === 'object') notOwned['other-instance'].push(`${kind} ${o.id} (owner ${h.other})`);
      else if (h === 'unmarked' && !known[kind].has(o.id)) notOwned.unmarked.push(`${kind} ${o.id}`);
    }
  }
  summary.otherOwner = notOwned['other-instance'].length;
  summary.unmarked = notOwned.unmarked.length;
  for (const [h, list] of Object.entries(notOwned))
    deps.metrics.notOwned.set({ endpoint: endpoint.name, holder: h }, list.length);
  if (summary.unmarked > 0) {
    deps.logger.info(
      { endpoint: endpoint.name, objects: notOwned.unmarked.slice(0, 20), count: summary.unmarked },
      'objects with metalbox ids but no owner identity, declared by no resource in this store: left alone (the instance whose store declares them adopts them)',
    );
  }

  await reportSharedSelectors(deps, endpoint, groups.items, remoteGroups, known.group, holder, failures);

  // Orphans: groups first, so no remaining group points at a deleted profile. Only this
  // instance's own objects: nothing it cannot prove it wrote is ever deleted.
  const orphans = [
    ...remoteGroups
      .filter((g) => shaped(g.id) && holder(g) === 'ours' && !known.group.has(g.id))
      .map((g) => ({ kind: 'group' as const, id: g.id })),
    ...remoteProfiles
      .filter((p) => shaped(p.id) && holder(p) === 'ours' && !known.profile.has(p.id))
      .map((p) => ({ kind: 'profile' as const, id: p.id })),
  ];
  for (const kind of ['group', 'profile'] as const) {
    await eachLimited(
      orphans.filter((o) => o.kind === kind),
      REPAIR_CONCURRENCY,
      async ({ id }) => {
        try {
          await endpoint.withLock(kind, id, () =>
            kind === 'group' ? deleteGroup(endpoint, id) : deleteProfile(endpoint, id),
          );
          summary.deleted++;
          deps.metrics.driftRepairs.inc({ endpoint: endpoint.name, kind, action: 'deleted' });
          deps.logger.info(
            { endpoint: endpoint.name, kind, id },
            'drift repair: deleted an object metalbox owns that no resource declares',
          );
        } catch (error) {
          failures.push(error);
        }
      },
    );
  }

  endpoint.pruneWrites((kind, id) => known[kind].has(id));

  const repaired = summary.created + summary.updated + summary.deleted;
  if (repaired > 0 || summary.statusUpdated > 0)
    deps.logger.info({ ...summary }, 'drift scan repaired Matchbox objects');
  else deps.logger.debug({ ...summary }, 'drift scan found nothing to repair');
  if (failures.length > 0) throw new DriftScanError(endpoint, failures.length, failures[0]);
  return summary;
}

/**
 * Whether the scan is responsible for the object on this endpoint: yes when its status says the
 * endpoint holds the current generation (then any difference is drift), or when the last write
 * there failed (catch-up). An object not yet written, or being deleted, is the controller's.
 */
function planFor(obj: ProfileObject | GroupObject, endpoint: Endpoint): { catchUp: boolean } | undefined {
  if (obj.metadata.deletionTimestamp) return undefined;
  const generation = obj.metadata.generation ?? 1;
  const entry = obj.status?.endpoints?.find((e) => e.endpoint === endpoint.address);
  if (isCurrentOn(entry, generation)) return { catchUp: false };
  if (entry && !entry.synced && entry.lastError !== undefined) return { catchUp: true };
  return undefined;
}

function deletionFailedOn(obj: ProfileObject | GroupObject, endpoint: Endpoint): boolean {
  if (!obj.metadata.deletionTimestamp) return false;
  return obj.status?.endpoints?.find((e) => e.endpoint === endpoint.address)?.lastError !== undefined;
}

function catchUpReason(endpoint: Endpoint, obj: ProfileObject | GroupObject): string {
  return `generation ${obj.metadata.generation ?? 1} was not written to Matchbox ${endpoint.label} when it failed; it answers again`;
}

async function profileDrift(
  endpoint: Endpoint,
  remote: Profile | undefined,
  desired: Profile,
  config: Buffer | undefined,
  failures: unknown[],
): Promise<string | undefined> {
  if (!remote) return `was missing on Matchbox ${endpoint.label}`;
  if (!sameProfile(remote, desired))
    return `differed from the declared spec on Matchbox ${endpoint.label} (${differingFields(remote, desired)})`;
  if (config === undefined) return undefined;
  // Matchbox cannot list generic templates: read the one this profile links to.
  try {
    const stored = await endpoint.call('GenericGet', (c) => c.genericGet(desired.id));
    if (stored.equals(config)) return undefined;
    return `its generic template differed from the declared one on Matchbox ${endpoint.label}`;
  } catch (error) {
    if (isMatchboxNotFound(error)) return `its generic template was missing on Matchbox ${endpoint.label}`;
    failures.push(error);
    return undefined;
  }
}

/** Writes one repair unless the sync controller wrote something newer meanwhile. */
async function repair(deps: DriftDeps, endpoint: Endpoint, r: Repair): Promise<boolean> {
  const uid = r.obj.metadata.uid ?? '';
  const generation = r.obj.metadata.generation ?? 1;
  const wrote = await endpoint.withLock(r.kind, r.id, async () => {
    if (endpoint.hasNewerWrite(r.kind, r.id, uid, generation)) return false;
    await r.write();
    endpoint.noteWrite(r.kind, r.id, { uid, generation, deleted: false });
    return true;
  });
  if (!wrote) return false;
  deps.metrics.driftRepairs.inc({ endpoint: endpoint.name, kind: r.kind, action: r.action });
  const kindName = r.kind === 'profile' ? 'MatchboxProfile' : 'MatchboxGroup';
  if (r.adopt) adoptedEvent(deps, r.obj, r);
  else
    deps.events.event(
      r.obj,
      'Warning',
      'DriftRepaired',
      `Matchbox ${r.kind} ${r.id} ${r.why}; written again`,
    );
  deps.logger.debug(
    { endpoint: endpoint.name, kind: kindName, id: r.id, action: r.action },
    'drift repair: wrote the declared object again',
  );
  return true;
}

/** Records in the object's status that the endpoint now holds its generation (unless it changed meanwhile). */
async function recordCatchUp(deps: DriftDeps, endpoint: Endpoint, r: Repair): Promise<boolean> {
  const kind: ResourceKind = r.kind === 'profile' ? ProfileKind : GroupKind;
  const generation = r.obj.metadata.generation ?? 1;
  const status = r.obj.status ?? {};
  const now = new Date();
  const endpoints = (status.endpoints ?? []).map((e) =>
    e.endpoint === endpoint.address
      ? nextEndpointStatus(e, e.endpoint, generation, { type: 'written' }, now)
      : e,
  );
  const next = withSyncHealth(
    withCondition(
      { ...status, endpoints },
      syncedCondition(endpoints, generation, endpointNames(deps.pool)),
      now,
    ),
    generation,
    r.obj.metadata.deletionTimestamp !== undefined,
    now,
  );
  try {
    await deps.store.patchStatus(
      kind,
      refOf(r.obj),
      { endpoints: next.endpoints ?? null, conditions: next.conditions ?? null },
      { resourceVersion: r.obj.metadata.resourceVersion },
    );
    return true;
  } catch (error) {
    // The controller changed it meanwhile: its own status is the newer word.
    if (isConflict(error)) return false;
    deps.logger.warn(
      { endpoint: endpoint.name, id: r.id, ...errorFields(error) },
      'could not record a drift repair in status',
    );
    return false;
  }
}

/** Clears the failed removal from the status of a resource being deleted (which re-queues it). */
async function recordRemoval(
  deps: DriftDeps,
  endpoint: Endpoint,
  kind: ObjectKindName,
  obj: ProfileObject | GroupObject,
): Promise<boolean> {
  const endpoints = (obj.status?.endpoints ?? []).map((e) =>
    e.endpoint === endpoint.address ? { endpoint: e.endpoint, synced: false } : e,
  );
  try {
    await deps.store.patchStatus(
      kind === 'profile' ? ProfileKind : GroupKind,
      refOf(obj),
      { endpoints },
      { resourceVersion: obj.metadata.resourceVersion },
    );
    return true;
  } catch (error) {
    // Changed meanwhile (its own reconcile is on it) or already gone: either way, done here.
    if (isConflict(error) || isStoreNotFound(error)) return false;
    throw error;
  }
}

/**
 * True when another instance holds the declared object on this endpoint: it is neither repaired
 * nor removed here. When status says this instance wrote it there (it was replaced behind its
 * back), the resource says so; a write that failed on it already says so in Synced.
 */
function isOthers(
  deps: DriftDeps,
  endpoint: Endpoint,
  kind: ObjectKindName,
  obj: ProfileObject | GroupObject,
  h: Holder,
  plan: { catchUp: boolean } | undefined,
): boolean {
  if (typeof h !== 'object') return false;
  if (!plan || plan.catchUp) return true;
  deps.events.event(
    obj,
    'Warning',
    'OwnedElsewhere',
    `Matchbox ${kind} ${obj.metadata.namespace}.${obj.metadata.name} on Matchbox ${endpoint.label} was written by the metalbox instance with owner identity "${h.other}"; this instance leaves it alone`,
  );
  deps.logger.warn(
    { endpoint: endpoint.name, kind, id: `${obj.metadata.namespace}.${obj.metadata.name}`, holder: h.other },
    'a declared Matchbox object belongs to another metalbox instance: not repaired',
  );
  return true;
}

/**
 * Records which declared groups share their selector with a group this instance does not own
 * (Matchbox sorts equal selectors arbitrarily, so it may serve either), and sets or clears the
 * SelectorUnique condition from what every endpoint's last scan found.
 */
async function reportSharedSelectors(
  deps: DriftDeps,
  endpoint: Endpoint,
  declared: readonly GroupObject[],
  remote: readonly Group[],
  known: ReadonlySet<string>,
  holder: (g: Group) => Holder,
  failures: unknown[],
): Promise<void> {
  const others = new Map<string, string[]>();
  for (const g of remote) {
    if (known.has(g.id) || holder(g) === 'ours') continue;
    const h = holder(g);
    const who =
      typeof h === 'object'
        ? `metalbox instance ${h.other}`
        : parseMatchboxId(g.id)
          ? 'no owner identity'
          : 'not written by metalbox';
    const key = canonicalJson(g.selector);
    others.set(key, [...(others.get(key) ?? []), `${g.id} (${who})`]);
  }
  const found = new Map<string, string[]>();
  const rendered = new Map<string, GroupObject>();
  for (const obj of declared) {
    let group: Group;
    try {
      group = renderGroup(obj, deps.owner);
    } catch (error) {
      if (error instanceof RenderError) continue;
      throw error;
    }
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    rendered.set(key, obj);
    const shared = others.get(canonicalJson(group.selector));
    if (shared) found.set(key, shared);
  }
  deps.sharedSelectors.set(endpoint.name, found);
  const now = new Date();
  for (const [key, obj] of rendered) {
    if (obj.metadata.deletionTimestamp) continue;
    const where = [...deps.sharedSelectors]
      .map(([name, byGroup]) => ({ name, ids: byGroup.get(key) }))
      .filter((x): x is { name: string; ids: string[] } => x.ids !== undefined);
    const had = obj.status?.conditions?.find((c) => c.type === SELECTOR_UNIQUE);
    if (where.length === 0 && !had) continue;
    const generation = obj.metadata.generation ?? 1;
    const ids = [...new Set(where.flatMap((w) => w.ids))].sort();
    const message = `Matchbox ${where.map((w) => w.name).join(', ')} also hold ${ids.join(', ')} with the same selector: Matchbox may serve either; remove one or make this selector more specific`;
    try {
      await updateStatus(deps, GroupKind, obj, (status) =>
        where.length === 0
          ? withoutCondition(status, SELECTOR_UNIQUE)
          : withCondition(
              status,
              {
                type: SELECTOR_UNIQUE,
                status: 'False',
                reason: 'SharedWithUnownedGroup',
                message,
                observedGeneration: generation,
              },
              now,
            ),
      );
    } catch (error) {
      if (!isStoreNotFound(error)) failures.push(error);
      continue;
    }
    if (where.length > 0 && had?.message !== message)
      deps.events.event(obj, 'Warning', 'SelectorShared', message);
  }
}

/** Top-level fields (and boot.* fields) that differ, for a readable Event. Values are not shown. */
function differingFields(a: Profile | Group, b: Profile | Group): string {
  const fields: string[] = [];
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(x), ...Object.keys(y)])) {
    if (canonicalJson(x[key]) === canonicalJson(y[key])) continue;
    if (key === 'boot' && x.boot && y.boot) {
      const bx = x.boot as Record<string, unknown>;
      const by = y.boot as Record<string, unknown>;
      for (const k of ['kernel', 'initrd', 'args'])
        if (canonicalJson(bx[k]) !== canonicalJson(by[k])) fields.push(`boot.${k}`);
    } else fields.push(key);
  }
  return fields.length ? `${fields.join(', ')} differed` : 'key order differed';
}

async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
