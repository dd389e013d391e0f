// One client per Matchbox gRPC endpoint (host:port, mandatory mTLS): typed Profile/Group/Generic/
// Select calls with a deadline on every call, failures translated into MatchboxError types.
//
// Connection handling is grpc-js's channel: it dials lazily, reconnects with backoff (capped
// low here, so a restarted Matchbox is used again within seconds), and fails calls fast while
// the server is down. A call that times out also drops the channel, because a connection to a
// host that vanished without a reset would otherwise stay "ready" and time out every call.

import { isIP } from 'node:net';
import * as tls from 'node:tls';
import { type ChannelOptions, type Client, credentials, type ServiceError } from '@grpc/grpc-js';
import {
  type CallContext,
  classify,
  isNotFound,
  MatchboxConfigError,
  type MatchboxError,
  type MatchboxObjectKind,
  toMatchboxError,
} from './errors.ts';
import { type Group, normalizeMac, normalizeSelector, type Profile } from './objects.ts';
import { matchboxServices } from './proto/load.ts';
import { type CertSummary, type CheckedTLS, checkTLS, fetchServerCert, type MatchboxTLS } from './tls.ts';

export const DEFAULT_TIMEOUT_MS = 10_000;

export interface MatchboxClientOptions {
  /** host:port of Matchbox's gRPC API (-rpc-address), no scheme. */
  endpoint: string;
  tls: MatchboxTLS;
  /** Deadline of every call. */
  timeoutMs?: number;
}

/** Splits and checks `host:port` (IPv6 as `[::1]:8081`), as Matchbox's own client demands. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const bad = (problem: string) => new MatchboxConfigError('endpoint', `"${endpoint}" ${problem}`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)) {
    throw bad(
      'must be host:port without a scheme (gRPC endpoints take no http:// or https://), e.g. matchbox.example.com:8081',
    );
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/\s[\]]+)):(\d+)$/.exec(endpoint);
  if (!m) {
    if (/^[^:/\s]+$/.test(endpoint) || /^\[[^\]]*\]$/.test(endpoint)) {
      throw bad("has no port: write host:port, e.g. matchbox.example.com:8081 (Matchbox's -rpc-address)");
    }
    throw bad('is not host:port, e.g. matchbox.example.com:8081 or [fd00::5]:8081');
  }
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw bad('has a port outside 1-65535');
  return { host: (m[1] ?? m[2])!, port };
}

// Matchbox (grpc-go) enforces a keepalive policy with MinTime 5 minutes and no pings without
// calls: pinging more often gets the connection closed with GOAWAY too_many_pings. So pings are
// sent only during calls and no more often than that; deadlines catch a dead peer sooner.
/** The SNI name sent to an endpoint given by IP address (a reserved, never-resolving name). */
const IP_ENDPOINT_SNI = 'matchbox-ip-endpoint.invalid';

const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.keepalive_time_ms': 300_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 0,
  'grpc.initial_reconnect_backoff_ms': 500,
  'grpc.max_reconnect_backoff_ms': 5_000,
  // A reset after a timeout must dial a new connection, not pick the old one from the global pool.
  'grpc.use_local_subchannel_pool': 1,
  // GroupList of a large fleet in one message (5,000 groups with metadata exceed the 4 MiB default).
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
};

type Unary = (
  request: object,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: unknown) => void,
) => unknown;

interface Stubs {
  profiles: Client;
  groups: Client;
  generic: Client;
  select: Client;
}

// Wire shapes (keepCase, defaults: true): empty strings and null messages for unset fields.
interface WireProfile {
  id?: string;
  name?: string;
  ignition_id?: string;
  cloud_id?: string;
  generic_id?: string;
  boot?: { kernel?: string; initrd?: string[]; args?: string[] } | null;
}
interface WireGroup {
  id?: string;
  name?: string;
  profile?: string;
  selector?: Record<string, string>;
  metadata?: Buffer | Uint8Array;
}

export function profileFromWire(wire: WireProfile): Profile {
  const profile: Profile = { id: wire.id ?? '' };
  if (wire.name) profile.name = wire.name;
  if (wire.boot) {
    profile.boot = {
      kernel: wire.boot.kernel ?? '',
      initrd: wire.boot.initrd ?? [],
      args: wire.boot.args ?? [],
    };
  }
  if (wire.generic_id) profile.generic_id = wire.generic_id;
  if (wire.ignition_id) profile.ignition_id = wire.ignition_id;
  if (wire.cloud_id) profile.cloud_id = wire.cloud_id;
  return profile;
}

export function profileToWire(profile: Profile): WireProfile {
  return {
    id: profile.id,
    name: profile.name ?? '',
    ignition_id: profile.ignition_id ?? '',
    cloud_id: profile.cloud_id ?? '',
    generic_id: profile.generic_id ?? '',
    boot: profile.boot
      ? { kernel: profile.boot.kernel, initrd: profile.boot.initrd, args: profile.boot.args }
      : null,
  };
}

/** Metadata bytes → object. Matchbox only stores a JSON object (or nothing). */
export function groupFromWire(wire: WireGroup): Group {
  const group: Group = {
    id: wire.id ?? '',
    profile: wire.profile ?? '',
    selector: { ...(wire.selector ?? {}) },
    metadata: {},
  };
  if (wire.name) group.name = wire.name;
  const bytes = wire.metadata ? Buffer.from(wire.metadata) : Buffer.alloc(0);
  if (bytes.length) {
    const parsed = JSON.parse(bytes.toString('utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      group.metadata = parsed as Record<string, unknown>;
  }
  // Key order as in Matchbox's group files.
  const { id, name, profile, selector, metadata } = group;
  return { id, ...(name ? { name } : {}), profile, selector, metadata };
}

/** The group as sent: MAC selectors normalised (GroupPut stores them verbatim), metadata as JSON bytes. */
export function groupToWire(group: Group): WireGroup {
  return {
    id: group.id,
    name: group.name ?? '',
    profile: group.profile,
    selector: normalizeSelector(group.selector),
    metadata: Buffer.from(JSON.stringify(group.metadata ?? {}), 'utf8'),
  };
}

export class MatchboxClient {
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly #tls: CheckedTLS;
  #stubs: Stubs | undefined;
  /** subjectAltNames of the last server certificate that failed the host check. */
  #rejectedServerNames: string[] | undefined;
  #closed = false;

  constructor(opts: MatchboxClientOptions) {
    const { host, port } = parseEndpoint(opts.endpoint);
    this.endpoint = opts.endpoint;
    this.host = host;
    this.port = port;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#tls = checkTLS(opts.tls);
  }

  /** Subject and issuer of the client certificate in use (for status and logs). */
  get clientCertificate(): CertSummary {
    return this.#tls.clientSummary;
  }

  #connect(): Stubs {
    if (this.#closed) throw new MatchboxConfigError('client', 'is closed', this.endpoint);
    if (this.#stubs) return this.#stubs;
    const creds = credentials.createSsl(
      Buffer.from(this.#tls.ca),
      Buffer.from(this.#tls.key),
      Buffer.from(this.#tls.cert),
      {
        // Checked against the endpoint's own host, also when an SNI placeholder went out (below).
        checkServerIdentity: (_sent, cert) => {
          const error = tls.checkServerIdentity(this.host, cert);
          this.#rejectedServerNames = error
            ? (cert.subjectaltname ?? '')
                .split(', ')
                .filter(Boolean)
                .map((n) => n.replace(/^IP Address:/, 'IP:'))
            : undefined;
          return error;
        },
      },
    );
    const services = matchboxServices();
    const target = this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
    // Node 26 refuses an IP address as the TLS server name, which grpc-js would send for an IP
    // endpoint; a placeholder goes out as SNI instead (Matchbox serves one certificate anyway).
    const options = isIP(this.host)
      ? { ...CHANNEL_OPTIONS, 'grpc.ssl_target_name_override': IP_ENDPOINT_SNI }
      : CHANNEL_OPTIONS;
    const profiles = new services.Profiles(target, creds, options);
    // The other services share the first stub's channel: one connection per endpoint.
    const shared = { channelOverride: profiles.getChannel() };
    this.#stubs = {
      profiles,
      groups: new services.Groups(target, creds, shared),
      generic: new services.Generic(target, creds, shared),
      select: new services.Select(target, creds, shared),
    };
    return this.#stubs;
  }

  /** Drops the channel; the next call dials afresh. */
  #reset(): void {
    const stubs = this.#stubs;
    this.#stubs = undefined;
    stubs?.profiles.close();
  }

  close(): void {
    this.#closed = true;
    this.#reset();
  }

  async #call<T>(
    stub: keyof Stubs,
    method: string,
    request: object,
    what?: { kind: MatchboxObjectKind; id: string },
  ): Promise<T> {
    const client = this.#connect()[stub];
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (!fn) throw new Error(`Matchbox stub ${stub} has no method ${method}`);
    try {
      return await new Promise<T>((resolve, reject) => {
        fn.call(client, request, { deadline: Date.now() + this.timeoutMs }, (error, response) =>
          error ? reject(error) : resolve(response as T),
        );
      });
    } catch (error) {
      throw await this.#translate(error as ServiceError, method, what);
    }
  }

  async #translate(
    error: ServiceError,
    operation: string,
    what?: { kind: MatchboxObjectKind; id: string },
  ): Promise<MatchboxError> {
    const failure = classify(error.code, error.details ?? error.message);
    const ctx: CallContext = {
      endpoint: this.endpoint,
      host: this.host,
      operation,
      timeoutMs: this.timeoutMs,
      client: this.#tls.clientSummary,
      configuredCA: this.#tls.caSummary,
      ...(what ?? {}),
    };
    if (failure.type === 'timeout') this.#reset();
    if (failure.type === 'serverName') {
      return toMatchboxError(
        failure,
        ctx,
        this.#rejectedServerNames ? ({ names: this.#rejectedServerNames } as CertSummary) : undefined,
      );
    }
    if (failure.type === 'unknownCA') {
      const serverCert = await fetchServerCert(
        this.host,
        this.port,
        this.#tls,
        Math.min(this.timeoutMs, 3_000),
      );
      return toMatchboxError(failure, ctx, serverCert);
    }
    return toMatchboxError(failure, ctx);
  }

  async #deleteTolerant(
    stub: keyof Stubs,
    method: string,
    request: object,
    what: { kind: MatchboxObjectKind; id: string },
  ) {
    try {
      await this.#call(stub, method, request, what);
    } catch (error) {
      // Matchbox answers a delete of a missing object with an error; for a sync it is success.
      if (!isNotFound(error)) throw error;
    }
  }

  // Profiles ----------------------------------------------------------------------------------

  async profilePut(profile: Profile): Promise<void> {
    await this.#call(
      'profiles',
      'ProfilePut',
      { profile: profileToWire(profile) },
      { kind: 'profile', id: profile.id },
    );
  }

  /** Throws MatchboxNotFoundError when there is no such profile. */
  async profileGet(id: string): Promise<Profile> {
    const res = await this.#call<{ profile: WireProfile | null }>(
      'profiles',
      'ProfileGet',
      { id },
      { kind: 'profile', id },
    );
    return profileFromWire(res.profile ?? { id });
  }

  /** Deleting a profile that is not there succeeds. */
  async profileDelete(id: string): Promise<void> {
    await this.#deleteTolerant('profiles', 'ProfileDelete', { id }, { kind: 'profile', id });
  }

  async profileList(): Promise<Profile[]> {
    const res = await this.#call<{ profiles: WireProfile[] }>('profiles', 'ProfileList', {});
    return (res.profiles ?? []).map(profileFromWire);
  }

  // Groups ------------------------------------------------------------------------------------

  /** Writes the group with MAC selectors in lowercase colon form. */
  async groupPut(group: Group): Promise<void> {
    let wire: WireGroup;
    try {
      wire = groupToWire(group);
    } catch (error) {
      throw new MatchboxConfigError(`group "${group.id}"`, (error as Error).message, this.endpoint);
    }
    await this.#call('groups', 'GroupPut', { group: wire }, { kind: 'group', id: group.id });
  }

  async groupGet(id: string): Promise<Group> {
    const res = await this.#call<{ group: WireGroup | null }>(
      'groups',
      'GroupGet',
      { id },
      { kind: 'group', id },
    );
    return groupFromWire(res.group ?? { id });
  }

  async groupDelete(id: string): Promise<void> {
    await this.#deleteTolerant('groups', 'GroupDelete', { id }, { kind: 'group', id });
  }

  async groupList(): Promise<Group[]> {
    const res = await this.#call<{ groups: WireGroup[] }>('groups', 'GroupList', {});
    return (res.groups ?? []).map(groupFromWire);
  }

  // Generic templates (generic/<name>; Matchbox has no list call for them) -------------------

  async genericPut(name: string, config: string | Uint8Array): Promise<void> {
    const bytes = typeof config === 'string' ? Buffer.from(config, 'utf8') : Buffer.from(config);
    await this.#call(
      'generic',
      'GenericPut',
      { name, config: bytes },
      { kind: 'generic template', id: name },
    );
  }

  async genericGet(name: string): Promise<Buffer> {
    const res = await this.#call<{ config: Buffer | null }>(
      'generic',
      'GenericGet',
      { name },
      { kind: 'generic template', id: name },
    );
    return Buffer.from(res.config ?? Buffer.alloc(0));
  }

  async genericDelete(name: string): Promise<void> {
    await this.#deleteTolerant('generic', 'GenericDelete', { name }, { kind: 'generic template', id: name });
  }

  // Select ------------------------------------------------------------------------------------

  /**
   * The profile Matchbox would serve a machine with these labels (e.g. {mac}). The gRPC path does
   * not normalise `mac` as the HTTP path does, so it is normalised here. NotFound when no group matches.
   */
  async selectProfile(labels: Record<string, string>): Promise<Profile> {
    const normalized: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels))
      normalized[k] = k.toLowerCase() === 'mac' ? (normalizeMac(v) ?? v) : v;
    const id = Object.entries(normalized)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const res = await this.#call<{ profile: WireProfile | null }>(
      'select',
      'SelectProfile',
      { labels: normalized },
      { kind: 'profile', id },
    );
    return profileFromWire(res.profile ?? {});
  }
}
