// Lookups over the host and group caches, kept up to date from informer events, so a reconcile or
// a watch mapping touches only the few objects that matter (a list of the cache copies every
// object, which is quadratic work for a fleet).
import type { BareMetalHost } from '../../crds/baremetalhost.ts';
import { normalizeMac } from '../../crds/common.ts';
import type { MatchboxGroup } from '../../crds/matchboxgroup.ts';
import type { Informer } from '../../runtime/informer.ts';
import { type ObjectRef, parseObjectKey, type Resource } from '../../runtime/resource.ts';
import { hostKey } from './bmc.ts';
import { bmcIdentity, bootMac } from './identity.ts';
import { holdsSlot } from './slots.ts';

type Host = BareMetalHost & Resource;
type Group = MatchboxGroup & Resource;

/** A multimap whose entries for one object are replaced as a whole. */
class Multi {
  #byValue = new Map<string, Set<string>>();
  #byKey = new Map<string, string[]>();

  set(key: string, values: (string | undefined)[]): void {
    this.delete(key);
    const kept = values.filter((v): v is string => v !== undefined);
    this.#byKey.set(key, kept);
    for (const v of kept) {
      let set = this.#byValue.get(v);
      if (!set) {
        set = new Set();
        this.#byValue.set(v, set);
      }
      set.add(key);
    }
  }

  delete(key: string): void {
    for (const v of this.#byKey.get(key) ?? []) {
      const set = this.#byValue.get(v);
      set?.delete(key);
      if (set?.size === 0) this.#byValue.delete(v);
    }
    this.#byKey.delete(key);
  }

  keys(value: string | undefined): string[] {
    return value === undefined ? [] : [...(this.#byValue.get(value) ?? [])];
  }
}

export class HostIndex {
  #hosts: Informer<Host>;
  #groups: Informer<Group>;
  #mac = new Multi();
  #bmc = new Multi();
  #secret = new Multi();
  #profile = new Multi();
  #groupMac = new Multi();
  #states = new Map<string, string | undefined>();
  #slots = new Set<string>();

  constructor(hosts: Informer<Host>, groups: Informer<Group>) {
    this.#hosts = hosts;
    this.#groups = groups;
    const putHost = (h: Host) => this.#putHost(h);
    const dropHost = (h: Host) => this.#dropHost(hostKey(h));
    hosts.on('add', putHost);
    hosts.on('update', putHost);
    hosts.on('delete', dropHost);
    const putGroup = (g: Group) => {
      const mac = g.spec?.selector?.mac;
      this.#groupMac.set(hostKey(g), [mac ? normalizeMac(mac) : undefined]);
    };
    groups.on('add', putGroup);
    groups.on('update', putGroup);
    groups.on('delete', (g) => this.#groupMac.delete(hostKey(g)));
  }

  #putHost(h: Host): void {
    const key = hostKey(h);
    const ns = h.metadata.namespace ?? '';
    this.#mac.set(key, [bootMac(h)]);
    this.#bmc.set(key, [bmcIdentity(h.spec.bmc.address)]);
    this.#secret.set(key, [`${ns}/${h.spec.bmc.credentialsName}`]);
    this.#profile.set(key, [
      h.spec.profileRef ? `${ns}/${h.spec.profileRef.name}` : undefined,
      h.spec.rescueProfileRef ? `${ns}/${h.spec.rescueProfileRef.name}` : undefined,
    ]);
    this.#states.set(key, h.status?.provisioning?.state);
    if (holdsSlot(h)) this.#slots.add(key);
    else this.#slots.delete(key);
  }

  #dropHost(key: string): void {
    for (const m of [this.#mac, this.#bmc, this.#secret, this.#profile]) m.delete(key);
    this.#states.delete(key);
    this.#slots.delete(key);
  }

  #hostsOf(keys: string[]): Host[] {
    return keys.map((k) => this.#hosts.get(parseObjectKey(k))).filter((h): h is Host => h !== undefined);
  }

  /** Other hosts sharing the host's boot MAC or BMC (candidates for a conflict), and itself. */
  sharingIdentity(host: BareMetalHost): Host[] {
    const keys = new Set([
      ...this.#mac.keys(bootMac(host)),
      ...this.#bmc.keys(bmcIdentity(host.spec.bmc.address)),
    ]);
    return this.#hostsOf([...keys]);
  }

  /** Groups (any owner) selecting the MAC. */
  groupsSelecting(mac: string | undefined): Group[] {
    return this.#groupMac
      .keys(mac)
      .map((k) => this.#groups.get(parseObjectKey(k)))
      .filter((g): g is Group => g !== undefined);
  }

  hostsUsingSecret(namespace: string, name: string): ObjectRef[] {
    return this.#secret.keys(`${namespace}/${name}`).map(parseObjectKey);
  }

  hostsUsingProfile(namespace: string, name: string): ObjectRef[] {
    return this.#profile.keys(`${namespace}/${name}`).map(parseObjectKey);
  }

  hostsWithMac(mac: string | undefined): ObjectRef[] {
    return this.#mac.keys(mac).map(parseObjectKey);
  }

  hostsWithBmc(identity: string | undefined): ObjectRef[] {
    return this.#bmc.keys(identity).map(parseObjectKey);
  }

  /** Hosts whose status shows a running install attempt. */
  slotHolders(): ReadonlySet<string> {
    return this.#slots;
  }

  states(): Iterable<string | undefined> {
    return this.#states.values();
  }
}
