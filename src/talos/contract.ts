// The Talos version contract (`talosVersion: v1.N`) decides which documents a config may hold and in
// which form the per-host network is written (talos.md §1.2): `.machine.network` up to v1.11, the
// network documents (HostnameConfig, LinkAliasConfig, BondConfig, VLANConfig, ...) from v1.12.
import { TalosConfigError } from './errors.ts';

export interface Contract {
  major: number;
  minor: number;
  /** `v1.N` as written. */
  text: string;
}

/** v1.14 moves `.machine.install` into UnattendedInstallConfig, which this renderer does not write yet. */
export const NEWEST_SUPPORTED_MINOR = 13;
/** First contract whose network is written as documents. */
export const NETWORK_DOCUMENTS_MINOR = 12;

export function parseContract(text: string, field = 'spec.talosVersion'): Contract {
  const m = /^v(1)\.([0-9]+)$/.exec(text);
  if (!m) throw new TalosConfigError(field, `"${text}" is not a version contract such as v1.10`);
  const contract = { major: Number(m[1]), minor: Number(m[2]), text };
  if (contract.minor > NEWEST_SUPPORTED_MINOR) {
    throw new TalosConfigError(
      field,
      `contract ${text} is not supported yet (v1.14 replaces .machine.install with UnattendedInstallConfig); use v1.${NEWEST_SUPPORTED_MINOR} or older, which v1.14 nodes still accept`,
    );
  }
  return contract;
}

export const usesNetworkDocuments = (c: Contract): boolean => c.minor >= NETWORK_DOCUMENTS_MINOR;

/**
 * The contract that introduced each typed document kind (talos.md §1.2, document map). Kinds of
 * v1.8 and earlier are not listed: every supported contract knows them.
 */
const KIND_SINCE: Record<string, number> = {
  EthernetConfig: 10,
  UserVolumeConfig: 10,
  PCIDriverRebindConfig: 10,
  ExistingVolumeConfig: 11,
  RawVolumeConfig: 11,
  SwapVolumeConfig: 11,
  ZswapConfig: 11,
  HostnameConfig: 12,
  LinkConfig: 12,
  LinkAliasConfig: 12,
  BondConfig: 12,
  BridgeConfig: 12,
  VLANConfig: 12,
  DHCPv4Config: 12,
  DHCPv6Config: 12,
  DummyLinkConfig: 12,
  Layer2VIPConfig: 12,
  HCloudVIPConfig: 12,
  WireguardConfig: 12,
  ResolverConfig: 12,
  StaticHostConfig: 12,
  TimeSyncConfig: 12,
  RegistryMirrorConfig: 12,
  RegistryAuthConfig: 12,
  RegistryTLSConfig: 12,
  OOMConfig: 12,
  KubeSpanConfig: 13,
  RoutingRuleConfig: 13,
  VRFConfig: 13,
  BlackholeRouteConfig: 13,
  TCPProbeConfig: 13,
  EnvironmentConfig: 13,
  ExternalVolumeConfig: 13,
  ImageVerificationConfig: 13,
  UnattendedInstallConfig: 14,
  DiscoveryIdentityConfig: 14,
  DiscoveryServiceConfig: 14,
  SysctlConfig: 14,
  RAIDArrayConfig: 14,
};

/** The contract a kind needs, when it is newer than `contract` (older nodes reject unknown kinds). */
export function kindNeeds(kind: string, contract: Contract): string | undefined {
  const since = KIND_SINCE[kind];
  return since !== undefined && since > contract.minor ? `v1.${since}` : undefined;
}
