// The per-host network of the installed OS, from BareMetalHost spec.network, in both forms Talos
// reads (talos.md §1): `.machine.network` (contracts up to v1.11) or network documents (v1.12 on).
// Link names chosen here: the bond and VLAN as the spec names them (VLAN `<parent>.<id>`), bond
// members as aliases `<bond>-port<i>`, the boot NIC as alias `boot0` when it needs its own config.
import type { BareMetalHostSpec, HostNetwork } from '../crds/baremetalhost.ts';
import { normalizeMac } from '../crds/common.ts';
import type { Contract } from './contract.ts';
import { TalosConfigError } from './errors.ts';
import type { ConfigDocument, YamlMap } from './yaml-stream.ts';

export const BOOT_LINK_ALIAS = 'boot0';

type Bond = NonNullable<HostNetwork['bond']>;
type Route = NonNullable<HostNetwork['routes']>[number];

/** What both forms are made of: which links exist and where the addresses go. */
interface NetworkPlan {
  net: HostNetwork;
  bootMac: string;
  bond: Bond | undefined;
  vlan: { id: number; parent: string; name: string; mtu?: number } | undefined;
  /** Where addresses, routes (or DHCP) go. */
  target: 'vlan' | 'bond' | 'boot' | 'none';
  /** Addresses to set; none means DHCP on the target. */
  addresses: string[];
  routes: Route[];
  /** The boot NIC is known not to be a bond member, so it keeps DHCP (explicit link config turns default DHCP off). */
  bootKeepsDhcp: boolean;
}

const mac = (value: string): string => (normalizeMac(value) ?? value).toLowerCase();

function plan(spec: BareMetalHostSpec): NetworkPlan | undefined {
  const net = spec.network;
  if (!net) return undefined;
  if (!spec.bootMACAddress) {
    // Inspection fills it in when the inventory is unambiguous; until then the boot NIC is unknown.
    throw new TalosConfigError('spec.bootMACAddress', 'needed to name the boot link; not known yet');
  }
  const bootMac = mac(spec.bootMACAddress);
  const bond = net.bond;
  const parent = net.vlan?.parent ?? bond?.name;
  const vlan =
    net.vlan && parent
      ? {
          id: net.vlan.id,
          parent,
          name: `${parent}.${net.vlan.id}`,
          ...(net.vlan.mtu === undefined ? {} : { mtu: net.vlan.mtu }),
        }
      : undefined;
  const addresses = net.addresses ?? [];
  const target = vlan ? 'vlan' : bond ? 'bond' : addresses.length > 0 ? 'boot' : 'none';
  const byMac = bond?.members.every((m) => m.mac !== undefined) ?? false;
  const bootIsMember = bond?.members.some((m) => m.mac !== undefined && mac(m.mac) === bootMac) ?? false;
  return {
    net,
    bootMac,
    bond,
    vlan,
    target,
    addresses,
    routes: net.routes ?? [],
    bootKeepsDhcp: bond !== undefined && byMac && !bootIsMember && target !== 'boot',
  };
}

const isDefaultRoute = (network: string) => network === '0.0.0.0/0' || network === '::/0';

// ---------------------------------------------------------------------------------------------
// v1.12+: documents

const doc = (kind: string, body: YamlMap): YamlMap => ({ apiVersion: 'v1alpha1', kind, ...body });

function linkAddressing(p: NetworkPlan): YamlMap {
  if (p.addresses.length === 0) return {};
  return {
    addresses: p.addresses.map((address) => ({ address })),
    ...(p.routes.length > 0
      ? {
          routes: p.routes.map((r) => ({
            ...(isDefaultRoute(r.network) ? {} : { destination: r.network }),
            ...(r.gateway === undefined ? {} : { gateway: r.gateway }),
            ...(r.metric === undefined ? {} : { metric: r.metric }),
          })),
        }
      : {}),
  };
}

/** The network documents of a host; each document's origin names the spec field it comes from. */
export function networkDocuments(spec: BareMetalHostSpec, hostField: string): ConfigDocument[] {
  const p = plan(spec);
  const out: ConfigDocument[] = [];
  if (!p) return out;
  const at = (field: string) => `${hostField}.${field}`;
  const add = (value: YamlMap, field: string) => out.push({ value, origin: at(field) });

  if (p.net.hostname)
    add(doc('HostnameConfig', { auto: 'off', hostname: p.net.hostname }), 'network.hostname');
  const bootAlias = () =>
    add(
      doc('LinkAliasConfig', {
        name: BOOT_LINK_ALIAS,
        selector: { match: `mac(link.permanent_addr) == "${p.bootMac}"` },
      }),
      'bootMACAddress',
    );
  if (p.target === 'boot' || p.bootKeepsDhcp) bootAlias();
  if (p.target === 'boot') {
    add(doc('LinkConfig', { name: BOOT_LINK_ALIAS, up: true, ...linkAddressing(p) }), 'network.addresses');
  }
  if (p.bootKeepsDhcp) add(doc('DHCPv4Config', { name: BOOT_LINK_ALIAS }), 'bootMACAddress');

  if (p.bond) {
    const bond = p.bond;
    const links = bond.members.map((m, i) => {
      const name = `${bond.name}-port${i}`;
      const match = m.mac
        ? `mac(link.permanent_addr) == "${mac(m.mac)}"`
        : `glob(${JSON.stringify(m.busPath)}, link.bus_path)`;
      add(doc('LinkAliasConfig', { name, selector: { match } }), `network.bond.members[${i}]`);
      return name;
    });
    add(
      doc('BondConfig', {
        name: bond.name,
        links,
        bondMode: bond.mode,
        ...(bond.lacpRate !== undefined && bond.mode === '802.3ad' ? { lacpRate: bond.lacpRate } : {}),
        ...(bond.xmitHashPolicy === undefined ? {} : { xmitHashPolicy: bond.xmitHashPolicy }),
        ...(bond.miimon === undefined ? {} : { miimon: bond.miimon }),
        ...(bond.mtu === undefined ? {} : { mtu: bond.mtu }),
        up: true,
        ...(p.target === 'bond' ? linkAddressing(p) : {}),
      }),
      'network.bond',
    );
  }
  if (p.vlan) {
    add(
      doc('VLANConfig', {
        name: p.vlan.name,
        vlanID: p.vlan.id,
        parent: p.vlan.parent,
        ...(p.vlan.mtu === undefined ? {} : { mtu: p.vlan.mtu }),
        up: true,
        ...linkAddressing(p),
      }),
      'network.vlan',
    );
  }
  if (p.addresses.length === 0 && (p.target === 'vlan' || p.target === 'bond')) {
    const name = p.target === 'vlan' ? p.vlan!.name : p.bond!.name;
    add(doc('DHCPv4Config', { name }), 'network.addresses');
  }
  const nameservers = p.net.nameservers ?? [];
  if (nameservers.length > 0) {
    add(
      doc('ResolverConfig', { nameservers: nameservers.map((address) => ({ address })) }),
      'network.nameservers',
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// up to v1.11: .machine.network

function v1alpha1Addressing(p: NetworkPlan): YamlMap {
  if (p.addresses.length === 0) return { dhcp: true };
  return {
    addresses: [...p.addresses],
    ...(p.routes.length > 0
      ? {
          routes: p.routes.map((r) => ({
            network: r.network,
            ...(r.gateway === undefined ? {} : { gateway: r.gateway }),
            ...(r.metric === undefined ? {} : { metric: r.metric }),
          })),
        }
      : {}),
  };
}

/** The parts of `.machine.network` the host spec sets, and the interface names it defines. */
export interface MachineNetwork {
  hostname?: string;
  interfaces: YamlMap[];
  nameservers?: string[];
  /** Link names the interfaces define, with the spec field of each (for clash errors). */
  links: Map<string, string>;
}

export function machineNetwork(
  spec: BareMetalHostSpec,
  contract: Contract,
  hostField: string,
): MachineNetwork {
  const p = plan(spec);
  const result: MachineNetwork = { interfaces: [], links: new Map() };
  if (!p) return result;
  // permanentAddr (the MAC before bonding rewrites it) is a selector from v1.10 on.
  const macKey = contract.minor >= 10 ? 'permanentAddr' : 'hardwareAddr';
  if (p.net.hostname) result.hostname = p.net.hostname;
  let bondInterface: YamlMap | undefined;
  if (p.bond) {
    const bond = p.bond;
    bondInterface = {
      interface: bond.name,
      bond: {
        mode: bond.mode,
        ...(bond.lacpRate !== undefined && bond.mode === '802.3ad' ? { lacpRate: bond.lacpRate } : {}),
        ...(bond.xmitHashPolicy === undefined ? {} : { xmitHashPolicy: bond.xmitHashPolicy }),
        ...(bond.miimon === undefined ? {} : { miimon: bond.miimon }),
        deviceSelectors: bond.members.map((m) => (m.mac ? { [macKey]: mac(m.mac) } : { busPath: m.busPath })),
      },
      ...(bond.mtu === undefined ? {} : { mtu: bond.mtu }),
      ...(p.target === 'bond' ? v1alpha1Addressing(p) : {}),
    };
    result.interfaces.push(bondInterface);
    result.links.set(bond.name, `${hostField}.network.bond`);
  }
  if (p.vlan) {
    const vlan = {
      vlanId: p.vlan.id,
      ...(p.vlan.mtu === undefined ? {} : { mtu: p.vlan.mtu }),
      ...v1alpha1Addressing(p),
    };
    if (bondInterface && p.vlan.parent === p.bond?.name) bondInterface.vlans = [vlan];
    else {
      result.interfaces.push({ interface: p.vlan.parent, vlans: [vlan] });
      result.links.set(p.vlan.parent, `${hostField}.network.vlan.parent`);
    }
  }
  if (p.target === 'boot') {
    result.interfaces.push({ deviceSelector: { hardwareAddr: p.bootMac }, ...v1alpha1Addressing(p) });
  }
  if (p.bootKeepsDhcp) result.interfaces.push({ deviceSelector: { hardwareAddr: p.bootMac }, dhcp: true });
  const nameservers = p.net.nameservers ?? [];
  if (nameservers.length > 0) result.nameservers = [...nameservers];
  return result;
}
