// Renders one host's Talos machine config: the base config of its role, the role patches, the
// documents typed from the host's spec (hostname, bond, VLAN, addresses, resolvers, install disk
// and image, event sink) in the form its version contract needs, then the host's own patches.
// Pure: the caller reads Secrets and objects; errors name the field to fix and never a value.
import { createHash } from 'node:crypto';
import type { BareMetalHostSpec } from '../crds/baremetalhost.ts';
import type { TalosMachineConfigSpec } from '../crds/talosmachineconfig.ts';
import { type Contract, kindNeeds, parseContract, usesNetworkDocuments } from './contract.ts';
import { TalosConfigError } from './errors.ts';
import { machineNetwork, networkDocuments } from './host-network.ts';
import { applyPatch, checkDuplicates, mergeDocument, parsePatch } from './merge.ts';
import {
  type ConfigDocument,
  documentId,
  isMachineDocument,
  isMap,
  parseDocuments,
  stringifyStream,
  type YamlMap,
} from './yaml-stream.ts';

/** YAML text and the field it came from (a spec path, or a Secret and key). */
export interface Source {
  text: string;
  field: string;
}

export interface RenderInput {
  host: { name: string; spec: BareMetalHostSpec };
  spec: TalosMachineConfigSpec;
  /** The base config of the host's role (`talosctl gen config` output). */
  base: Source;
  /** spec.patches.all then spec.patches.<role>, resolved. */
  rolePatches: Source[];
  /** spec.hostPatches of this host, resolved. */
  hostPatches: Source[];
  /** `host:port` of the event sink, written as an EventSinkConfig so events survive the install reboot. */
  eventSinkEndpoint?: string;
}

export interface RenderedConfig {
  /** The config as served to the host. Secret: never log it. */
  config: string;
  /** sha256 (hex) of `config`. */
  hash: string;
  /** Document ids in order (safe to show). */
  documents: string[];
}

/** Link kinds share one name space (Talos `ConflictsWithKinds`); an alias may also be configured by a LinkConfig. */
const LINK_KINDS = new Set([
  'LinkConfig',
  'BondConfig',
  'BridgeConfig',
  'VLANConfig',
  'DummyLinkConfig',
  'VRFConfig',
  'WireguardConfig',
  'LinkAliasConfig',
]);
/** Typed documents the renderer owns and merges over what the base holds (singletons). */
const MERGED_SINGLETONS = new Set(['HostnameConfig', 'EventSinkConfig']);

export const configHash = (config: string): string => createHash('sha256').update(config).digest('hex');

function checkKinds(docs: readonly ConfigDocument[], contract: Contract): void {
  for (const d of docs) {
    if (isMachineDocument(d.value)) continue;
    const needs = kindNeeds(String(d.value.kind), contract);
    if (needs) {
      throw new TalosConfigError(
        d.origin,
        `document ${documentId(d.value)} needs Talos ${needs} but spec.talosVersion is ${contract.text}; nodes reject kinds they do not know`,
      );
    }
  }
}

function machineOf(docs: readonly ConfigDocument[]): ConfigDocument {
  const machine = docs.filter((d) => isMachineDocument(d.value));
  if (machine.length !== 1 || !machine[0]) {
    throw new TalosConfigError(
      docs[0]?.origin ?? 'base config',
      machine.length === 0 ? 'has no v1alpha1 (machine) document' : 'has more than one v1alpha1 document',
    );
  }
  return machine[0];
}

const child = (obj: YamlMap, key: string): YamlMap => {
  const value = obj[key];
  if (isMap(value)) return value;
  const created: YamlMap = {};
  obj[key] = created;
  return created;
};

function checkBase(base: ConfigDocument, role: string, spec: TalosMachineConfigSpec): void {
  const machine = isMap(base.value.machine) ? base.value.machine : {};
  const type = machine.type;
  const ok =
    role === 'controlplane'
      ? type === 'controlplane' || type === 'init'
      : type === 'worker' || type === 'join';
  if (!ok) {
    throw new TalosConfigError(
      base.origin,
      `machine.type is ${JSON.stringify(type ?? null)}, but this key is the base of ${role} hosts`,
    );
  }
  const cluster = isMap(base.value.cluster) ? base.value.cluster : {};
  if (spec.clusterName !== undefined && cluster.clusterName !== spec.clusterName) {
    throw new TalosConfigError(
      'spec.clusterName',
      `is ${JSON.stringify(spec.clusterName)} but cluster.clusterName in ${base.origin} is ${JSON.stringify(cluster.clusterName ?? null)}`,
    );
  }
}

/** Scalar edits of the v1alpha1 document: endpoint and install. */
function applyInstall(machineDoc: YamlMap, input: RenderInput): void {
  const { spec, host } = input;
  child(child(machineDoc, 'cluster'), 'controlPlane').endpoint = spec.clusterEndpoint;
  const install = child(child(machineDoc, 'machine'), 'install');
  install.image = spec.installerImage;
  const disk = host.spec.installDisk ?? spec.installDisk;
  if (disk !== undefined) {
    install.disk = disk;
    delete install.diskSelector;
  } else if (spec.installDiskSelector) {
    install.diskSelector = { ...spec.installDiskSelector };
    delete install.disk;
  }
  install.wipe = spec.wipe ?? false;
}

function applyMachineNetwork(
  machineDoc: ConfigDocument,
  input: RenderInput,
  contract: Contract,
  hostField: string,
) {
  const net = machineNetwork(input.host.spec, contract, hostField);
  const network = child(child(machineDoc.value, 'machine'), 'network');
  const existing = Array.isArray(network.interfaces) ? (network.interfaces as unknown[]) : [];
  for (const [i, iface] of existing.entries()) {
    const name = isMap(iface) ? iface.interface : undefined;
    const owner = typeof name === 'string' ? net.links.get(name) : undefined;
    if (owner) {
      throw new TalosConfigError(
        owner,
        `link ${name} is also configured by machine.network.interfaces[${i}] in the base config or a role patch`,
      );
    }
  }
  if (net.hostname !== undefined) network.hostname = net.hostname;
  if (net.interfaces.length > 0) network.interfaces = [...existing, ...net.interfaces];
  if (net.nameservers !== undefined) network.nameservers = net.nameservers;
}

/** v1.12+: the v1alpha1 document must not carry what the network documents now say. */
function checkNoMachineNetwork(machineDoc: ConfigDocument, typed: readonly ConfigDocument[]): void {
  const machine = isMap(machineDoc.value.machine) ? machineDoc.value.machine : {};
  const network = isMap(machine.network) ? machine.network : {};
  const features = isMap(machine.features) ? machine.features : {};
  const has = (kind: string) => typed.find((d) => d.value.kind === kind);
  const conflicts: [boolean, string, ConfigDocument | undefined][] = [
    [network.hostname !== undefined, 'machine.network.hostname', has('HostnameConfig')],
    [features.stableHostname === true, 'machine.features.stableHostname', has('HostnameConfig')],
    [
      Array.isArray(network.nameservers) && network.nameservers.length > 0,
      'machine.network.nameservers',
      has('ResolverConfig'),
    ],
    [
      Array.isArray(network.interfaces) && network.interfaces.length > 0,
      'machine.network.interfaces',
      typed.find((d) => LINK_KINDS.has(String(d.value.kind))),
    ],
  ];
  for (const [present, field, doc] of conflicts) {
    if (present && doc) {
      throw new TalosConfigError(
        doc.origin,
        `${field} is set in the base config or a role patch; with contract v1.12 and later the host network is written as documents (${documentId(doc.value)}), and Talos rejects both at once`,
      );
    }
  }
}

function addTypedDocuments(config: ConfigDocument[], typed: readonly ConfigDocument[]): ConfigDocument[] {
  const out = [...config];
  for (const t of typed) {
    const id = documentId(t.value);
    const index = out.findIndex((d) => documentId(d.value) === id);
    const existing = out[index];
    if (!existing) {
      out.push(t);
    } else if (MERGED_SINGLETONS.has(String(t.value.kind))) {
      out[index] = { value: mergeDocument(existing.value, t.value), origin: t.origin };
    } else {
      throw new TalosConfigError(t.origin, `duplicate document ${id}: ${existing.origin} already defines it`);
    }
  }
  return out;
}

function checkLinkNames(docs: readonly ConfigDocument[]): void {
  const seen = new Map<string, ConfigDocument>();
  for (const d of docs) {
    const kind = String(d.value.kind);
    if (!LINK_KINDS.has(kind) || typeof d.value.name !== 'string') continue;
    const other = seen.get(d.value.name);
    if (!other) {
      seen.set(d.value.name, d);
      continue;
    }
    const kinds = new Set([kind, String(other.value.kind)]);
    // A LinkConfig may configure an aliased link; any other pair of kinds is one link defined twice.
    if (kinds.size === 2 && kinds.has('LinkConfig') && kinds.has('LinkAliasConfig')) continue;
    throw new TalosConfigError(
      d.origin,
      `link name ${d.value.name} clash: ${kind} here and ${String(other.value.kind)} in ${other.origin} name the same link`,
    );
  }
}

// Base configs are a few hundred commented lines and the same for every host of a role: parse each
// once (by content), hand out copies.
const parsedBases = new Map<string, ConfigDocument[]>();
const MAX_PARSED_BASES = 16;

function parseBase(base: Source): ConfigDocument[] {
  const key = `${base.field}\0${configHash(base.text)}`;
  let docs = parsedBases.get(key);
  if (!docs) {
    docs = parseDocuments(base.text, base.field);
    checkDuplicates(docs, base.field);
    parsedBases.set(key, docs);
    if (parsedBases.size > MAX_PARSED_BASES) parsedBases.delete(parsedBases.keys().next().value as string);
  }
  return structuredClone(docs);
}

export function renderHostConfig(input: RenderInput): RenderedConfig {
  const contract = parseContract(input.spec.talosVersion);
  const hostField = `BareMetalHost ${input.host.name} spec`;

  let docs = parseBase(input.base);
  checkKinds(docs, contract);
  checkBase(machineOf(docs), input.host.spec.role, input.spec);

  for (const patch of input.rolePatches) {
    const parsed = parsePatch(patch.text, patch.field);
    checkKinds(parsed, contract);
    docs = applyPatch(docs, parsed);
  }

  let machineDoc = machineOf(docs);
  machineDoc = { ...machineDoc, value: structuredClone(machineDoc.value) };
  docs = docs.map((d) => (isMachineDocument(d.value) ? machineDoc : d));
  applyInstall(machineDoc.value, input);

  const typed: ConfigDocument[] = [];
  if (usesNetworkDocuments(contract)) {
    const network = networkDocuments(input.host.spec, hostField);
    checkNoMachineNetwork(machineDoc, network);
    typed.push(...network);
  } else {
    applyMachineNetwork(machineDoc, input, contract, hostField);
  }
  if (input.eventSinkEndpoint) {
    typed.push({
      value: { apiVersion: 'v1alpha1', kind: 'EventSinkConfig', endpoint: input.eventSinkEndpoint },
      origin: 'talos.eventSink.advertiseAddress',
    });
  }
  docs = addTypedDocuments(docs, typed);

  for (const patch of input.hostPatches) {
    const parsed = parsePatch(patch.text, patch.field);
    checkKinds(parsed, contract);
    docs = applyPatch(docs, parsed);
  }

  checkDuplicates(docs, 'rendered config');
  checkLinkNames(docs);
  const ordered = [
    ...docs.filter((d) => isMachineDocument(d.value)),
    ...docs.filter((d) => !isMachineDocument(d.value)),
  ];
  const config = stringifyStream(ordered.map((d) => d.value));
  return { config, hash: configHash(config), documents: ordered.map((d) => documentId(d.value)) };
}
