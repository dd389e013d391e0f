// BMC address schemes, Metal3-compatible: the scheme picks the driver (and vendor quirks), the authority
// the BMC, and for Redfish an optional System path. An address without a scheme is IPMI, as in Metal3.
import { isIP } from 'node:net';
import { BmcAddressError } from './errors.ts';

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?$/i;

export type RedfishVendor = 'generic' | 'idrac' | 'ilo5';

export interface RedfishAddress {
  protocol: 'redfish';
  vendor: RedfishVendor;
  /** The scheme as written, lower-case (e.g. idrac-redfish+http), so hints can be pasted back. */
  scheme: string;
  /** The address as written (userinfo removed), for messages. */
  display: string;
  /** http(s)://host:port, no trailing slash. */
  baseUrl: string;
  tls: boolean;
  host: string;
  port: number;
  /** e.g. /redfish/v1/Systems/1; undefined means "the only System". */
  systemPath?: string;
  /** Identity of the BMC for limiting and circuit breaking: host:port. */
  key: string;
}

export interface IpmiAddress {
  protocol: 'ipmi';
  display: string;
  /** Without IPv6 brackets (ipmitool -H takes the bare address). */
  host: string;
  port: number;
  key: string;
}

export type BmcAddress = RedfishAddress | IpmiAddress;

interface SchemeInfo {
  protocol: 'redfish' | 'ipmi';
  vendor?: RedfishVendor;
  tls?: boolean;
  defaultPort: number;
}

const redfishFamilies: [prefix: string, vendor: RedfishVendor][] = [
  ['redfish', 'generic'],
  ['idrac-redfish', 'idrac'],
  ['ilo5-redfish', 'ilo5'],
];

const schemes = new Map<string, SchemeInfo>([['ipmi', { protocol: 'ipmi', defaultPort: 623 }]]);
for (const [prefix, vendor] of redfishFamilies) {
  schemes.set(prefix, { protocol: 'redfish', vendor, tls: true, defaultPort: 443 });
  schemes.set(`${prefix}+https`, { protocol: 'redfish', vendor, tls: true, defaultPort: 443 });
  schemes.set(`${prefix}+http`, { protocol: 'redfish', vendor, tls: false, defaultPort: 80 });
}

/** Every scheme parseBmcAddress accepts, for help texts and errors. */
export const supportedSchemes: readonly string[] = [...schemes.keys()].map((s) => `${s}://`);

/** Metal3 schemes metalbox knowingly does not implement, with what to use instead. */
const knownUnsupported: Record<string, string> = {
  'redfish-virtualmedia': 'virtual media boot is not implemented; use redfish:// (network boot)',
  'idrac-virtualmedia': 'virtual media boot is not implemented; use idrac-redfish:// (network boot)',
  'ilo5-virtualmedia': 'virtual media boot is not implemented; use ilo5-redfish:// (network boot)',
  'redfish-uefihttp': 'UEFI HTTP boot is not implemented; use redfish:// (PXE)',
  libvirt: 'libvirt is not a BMC; use a Redfish emulator (redfish://) for virtual machines',
};

/** Removes userinfo so an address can be shown without leaking a password someone put into it. */
export function displayAddress(raw: string): string {
  return raw.replace(/^([a-z0-9+.-]+:\/\/)[^@/]*@/i, '$1***@');
}

export function parseBmcAddress(raw: string, field = 'bmc.address'): BmcAddress {
  const input = raw.trim();
  const display = displayAddress(input);
  const fail = (detail: string): never => {
    throw new BmcAddressError(display, detail, { field });
  };
  if (input === '') fail('is empty');

  const schemeMatch = /^([a-z][a-z0-9+.-]*):\/\//i.exec(input);
  const scheme = schemeMatch ? schemeMatch[1]!.toLowerCase() : 'ipmi';
  const info = schemes.get(scheme);
  if (!info) {
    const base = scheme.replace(/\+https?$/, '');
    const hint = knownUnsupported[base];
    fail(
      `unsupported scheme "${scheme}://"${hint ? ` (${hint})` : ''}; supported: ${supportedSchemes.join(', ')}`,
    );
  }
  const info_ = info as SchemeInfo;

  let url: URL;
  try {
    // Parse under a neutral special scheme so WHATWG URL rules (IPv6 brackets, ports) apply uniformly.
    url = new URL(`http://${schemeMatch ? input.slice(schemeMatch[0].length) : input}`);
  } catch {
    return fail(
      'is not a valid URL (expected e.g. redfish://10.0.0.10/redfish/v1/Systems/1 or ipmi://10.0.0.10)',
    );
  }
  if (url.username || url.password) fail('must not contain credentials; put them in the credentials Secret');
  if (url.hostname === '') fail('has no host');
  if (url.search || url.hash) fail('must not have a query or fragment');

  const authority = schemeMatch ? input.slice(schemeMatch[0].length) : input;
  // URL takes "host:" as "no port" and would dial the default; a colon with nothing after it is a typo.
  if (/^(?:\[[^\]]*\]|[^/:[]*):(?:\/|$)/.test(authority)) fail('has an empty port after ":"');
  // URL drops the port when it equals http's default (80); recover what was written.
  const explicitPort = /^(?:\[[^\]]*\]|[^/:]*):(\d+)/.exec(authority);
  const port = explicitPort ? Number(explicitPort[1]) : info_.defaultPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`port ${explicitPort?.[1]} is out of range`);

  const bracketed = url.hostname;
  const host = bracketed.startsWith('[') ? bracketed.slice(1, -1) : bracketed;
  const key = `${bracketed}:${port}`;

  if (info_.protocol === 'ipmi') {
    if (url.pathname !== '/' && url.pathname !== '') fail('an ipmi:// address has no path');
    // The host becomes an ipmitool argument: only a hostname or an IP literal, never something
    // an argument parser or a shell could read as more (`10.0.0.1;id`, `-oProxyCommand=x`).
    if (isIP(host) === 0 && !HOSTNAME.test(host))
      fail(`host "${host}" is not a hostname (letters, digits, "-" and ".") or an IP address`);
    return { protocol: 'ipmi', display, host, port, key };
  }

  const path = decodeURI(url.pathname).replace(/\/+$/, '');
  let systemPath: string | undefined;
  if (path !== '' && path !== '/redfish/v1' && path !== '/redfish/v1/Systems') {
    if (!/^\/redfish\/v1\/Systems\/[^/]+$/.test(path)) {
      fail(`path "${path}" is not a Redfish System (expected /redfish/v1/Systems/<id>)`);
    }
    systemPath = url.pathname.replace(/\/+$/, '');
  }
  const tls = info_.tls === true;
  return {
    protocol: 'redfish',
    vendor: info_.vendor ?? 'generic',
    scheme,
    display,
    baseUrl: `${tls ? 'https' : 'http'}://${bracketed}:${port}`,
    tls,
    host,
    port,
    ...(systemPath ? { systemPath } : {}),
    key,
  };
}
