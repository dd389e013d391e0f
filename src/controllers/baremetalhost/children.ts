// The Matchbox objects a host owns: its install profile (profileRef + per-host args + the hooks'
// args), its disk profile (an iPXE `exit`, so a network boot after the install falls through to
// the disk: install-loop prevention), and one group selecting its boot MAC that points at whichever
// of them (or the rescue profile) the host should boot now. Names derive from the host's name;
// ownerReferences mark them as the host's; the sync controllers write them to every Matchbox.
import type { BareMetalHost, BootFromDiskMethod } from '../../crds/baremetalhost.ts';
import { API_VERSION, MATCHBOX_CONDITIONS } from '../../crds/common.ts';
import type { MatchboxGroup, MatchboxGroupSpec } from '../../crds/matchboxgroup.ts';
import type { MatchboxProfile, MatchboxProfileSpec } from '../../crds/matchboxprofile.ts';
import { findCondition } from '../../runtime/conditions.ts';
import { isAlreadyExists, isNotFound } from '../../runtime/errors.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { Resource, ResourceKind } from '../../runtime/resource.ts';
import { type HostContext, HostError } from './context.ts';
import { bootMac, ownedBy } from './identity.ts';
import { GROUP_KIND, PROFILE_KIND } from './kinds.ts';

export const childNames = (host: { metadata: { name?: string } }) => {
  const name = host.metadata.name ?? '';
  return { install: `${name}-install`, disk: `${name}-disk`, group: `${name}-boot` };
};

/**
 * iPXE runs the kernel line's URL: /generic answers this profile's generic template for the MAC,
 * the iPXE script of the host's boot-from-disk method. What each does on real firmware with the
 * network first is measured in docs/boot-from-disk.md: `exit` falls through to the disk on BIOS,
 * but OVMF (EDK2) treats a boot option that succeeds as "show the boot menu".
 */
// biome-ignore lint/suspicious/noTemplateCurlyInString: an iPXE setting, expanded by iPXE.
export const DISK_KERNEL = '/generic?mac=${mac:hexhyp}';
const DISK_SCRIPTS: Record<Exclude<BootFromDiskMethod, 'http-404'>, string> = {
  // The BMC boots the disk; a network boot that still happens gets exit.
  bmc: 'exit',
  'ipxe-exit': 'exit',
  'ipxe-exit-error': 'exit 1',
  'ipxe-sanboot': 'sanboot --no-describe --drive 0x80',
};

/** The host's method, or the default for its boot mode (legacy: ipxe-exit; UEFI: bmc). */
export function bootFromDiskMethod(host: BareMetalHost): BootFromDiskMethod {
  return host.spec.bootFromDiskMethod ?? (host.spec.bootMode === 'legacy' ? 'ipxe-exit' : 'bmc');
}

/**
 * Profile args, then the host's args; an arg `key=value` replaces a profile arg with the same key
 * (the first occurrence wins on a kernel command line, so leaving both would ignore ours).
 */
export function mergeArgs(base: readonly string[], extra: readonly string[]): string[] {
  const keyOf = (arg: string) => (arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg);
  const replaced = new Set(extra.map(keyOf));
  return [...base.filter((a) => !replaced.has(keyOf(a))), ...extra];
}

/** Args every install of this host carries: which host and attempt it is (visible on the console). */
export function hostArgs(host: BareMetalHost, attempt: number): string[] {
  return [`metalbox.host=${host.metadata.namespace}/${host.metadata.name}`, `metalbox.attempt=${attempt}`];
}

export function installProfileSpec(
  host: BareMetalHost,
  base: MatchboxProfile,
  extraArgs: readonly string[],
): MatchboxProfileSpec {
  const ns = host.metadata.namespace;
  const spec: MatchboxProfileSpec = {
    displayName: `metalbox install ${ns}/${host.metadata.name} (from ${base.metadata.name})`,
  };
  if (base.spec.kernel !== undefined) spec.kernel = base.spec.kernel;
  if (base.spec.initrd !== undefined) spec.initrd = [...base.spec.initrd];
  spec.args = mergeArgs(base.spec.args ?? [], extraArgs);
  if (base.spec.genericConfig) spec.genericConfig = structuredClone(base.spec.genericConfig);
  return spec;
}

export function diskProfileSpec(host: BareMetalHost): MatchboxProfileSpec {
  const method = bootFromDiskMethod(host);
  const command = method === 'http-404' ? 'exit' : DISK_SCRIPTS[method];
  return {
    displayName: `metalbox disk ${host.metadata.namespace}/${host.metadata.name}`,
    kernel: DISK_KERNEL,
    genericConfig: {
      inline: `#!ipxe\n# metalbox: installed; boot from disk (install-loop prevention, ${method})\n${command}\n`,
    },
  };
}

export function groupSpec(host: BareMetalHost, profile: string): MatchboxGroupSpec {
  const mac = bootMac(host);
  if (!mac) throw new HostError('boot configuration error', 'spec.bootMACAddress is not set');
  return {
    displayName: `metalbox ${host.metadata.namespace}/${host.metadata.name}`,
    profileRef: { name: profile },
    selector: { mac },
  };
}

function ownerReference(host: BareMetalHost) {
  return {
    apiVersion: API_VERSION,
    kind: 'BareMetalHost',
    name: host.metadata.name ?? '',
    uid: host.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Synced=True for the object's current generation (the sync controllers wrote it everywhere). */
export function isSynced(obj: MatchboxProfile | MatchboxGroup): boolean {
  const synced = findCondition(obj.status?.conditions, MATCHBOX_CONDITIONS.synced);
  if (synced?.status !== 'True') return false;
  return (synced.observedGeneration ?? obj.status?.observedGeneration) === obj.metadata.generation;
}

type Child = (MatchboxProfile | MatchboxGroup) & Resource;

/** Creates or updates one owned child so its spec is `spec`; returns it as stored. */
async function ensureChild<T extends Child>(
  ctx: HostContext,
  kind: ResourceKind,
  name: string,
  spec: T['spec'],
): Promise<T> {
  const { store } = ctx.env;
  const ref = { namespace: ctx.namespace, name };
  const what = `${kind.kind} ${ref.namespace}/${name}`;
  // The cache first: a stale copy is harmless (its spec differs, so the update below conflicts
  // and the reconcile starts over; its Synced is for an older generation than the one we wrote).
  const cache = (kind === GROUP_KIND ? ctx.env.groups : ctx.env.profiles) as unknown as Informer<T>;
  let current = cache.get(ref) ?? (await getOrUndefined<T>(ctx, kind, name));
  if (!current) {
    try {
      return await store.create<T>(kind, {
        apiVersion: API_VERSION,
        kind: kind.kind,
        metadata: { name, namespace: ref.namespace, ownerReferences: [ownerReference(ctx.host)] },
        spec,
      } as T);
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
      current = await store.get<T>(kind, ref);
    }
  }
  if (!ownedBy(current, ctx.host)) {
    throw new HostError(
      'boot configuration error',
      `${what} exists and is not owned by this host; delete or rename it (the host names its Matchbox objects after itself)`,
    );
  }
  if (current.metadata.deletionTimestamp) {
    throw new HostError(
      'boot configuration error',
      `${what} is being deleted; waiting before re-creating it`,
    );
  }
  if (JSON.stringify(current.spec) === JSON.stringify(spec)) return current;
  return store.update<T>(kind, { ...current, spec } as T);
}

export function ensureProfile(ctx: HostContext, name: string, spec: MatchboxProfileSpec) {
  return ensureChild<MatchboxProfile & Resource>(ctx, PROFILE_KIND, name, spec);
}

/**
 * The disk answer: the disk profile, and the group pointing at it, or no group at all for http-404
 * (Matchbox answers 404 and iPXE gives up). Returns whether Matchbox serves it everywhere.
 */
export async function ensureDiskAnswer(ctx: HostContext): Promise<boolean> {
  const names = childNames(ctx.host);
  const disk = await ensureProfile(ctx, names.disk, diskProfileSpec(ctx.host));
  if (bootFromDiskMethod(ctx.host) === 'http-404') {
    const group = await getOrUndefined<Child>(ctx, GROUP_KIND, names.group);
    if (!group || !ownedBy(group, ctx.host)) return isSynced(disk);
    if (!group.metadata.deletionTimestamp) {
      await ctx.env.store
        .delete(GROUP_KIND, { namespace: ctx.namespace, name: names.group })
        .catch((error) => {
          if (!isNotFound(error)) throw error;
        });
    }
    return false;
  }
  const group = await ensureGroup(ctx, names.disk);
  return isSynced(disk) && isSynced(group);
}

export function ensureGroup(ctx: HostContext, profile: string) {
  return ensureChild<MatchboxGroup & Resource>(
    ctx,
    GROUP_KIND,
    childNames(ctx.host).group,
    groupSpec(ctx.host, profile),
  );
}

async function getOrUndefined<T extends Resource>(
  ctx: HostContext,
  kind: ResourceKind,
  name: string,
): Promise<T | undefined> {
  try {
    return await ctx.env.store.get<T>(kind, { namespace: ctx.namespace, name });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** The user's MatchboxProfile `name` in the host's namespace, or a HostError naming `field`. */
export async function userProfile(ctx: HostContext, name: string, field: string, type: HostError['type']) {
  const profile =
    ctx.env.profiles.get({ namespace: ctx.namespace, name }) ??
    (await getOrUndefined<MatchboxProfile & Resource>(ctx, PROFILE_KIND, name));
  if (!profile) {
    throw new HostError(type, `MatchboxProfile ${ctx.namespace}/${name} (${field}) not found`);
  }
  return profile;
}

/** Every child this host owns (its names derive from the host's; ownership is checked). */
export async function ownedChildren(ctx: HostContext): Promise<{ kind: ResourceKind; obj: Child }[]> {
  const names = childNames(ctx.host);
  const known: [ResourceKind, string][] = [
    [GROUP_KIND, names.group],
    [PROFILE_KIND, names.install],
    [PROFILE_KIND, names.disk],
  ];
  const found: { kind: ResourceKind; obj: Child }[] = [];
  for (const [kind, name] of known) {
    const obj = await getOrUndefined<Child>(ctx, kind, name);
    if (obj && ownedBy(obj, ctx.host)) found.push({ kind, obj });
  }
  return found;
}

/**
 * Deletes every owned child (the sync controllers' finalizers remove them from each Matchbox
 * first). Returns how many still exist: the caller waits until none do.
 */
export async function deleteChildren(ctx: HostContext): Promise<number> {
  const children = await ownedChildren(ctx);
  for (const { kind, obj } of children) {
    if (obj.metadata.deletionTimestamp) continue;
    try {
      await ctx.env.store.delete(kind, { namespace: ctx.namespace, name: obj.metadata.name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  return children.length;
}
