// The event sink: a plaintext gRPC server for `events.EventSinkService/Publish`, the stream Talos
// sends to `talos.events.sink=<addr>:<port>` (and to EventSinkConfig after the install). An event
// carries no identity, so it belongs to the host whose config was fetched from the event's source
// address (status.talos.configFetchedFrom). A host's static addresses (spec.network.addresses)
// are in Git, so anyone could send from them: one counts only once the machine itself reported it
// (an AddressEvent from the fetch address, kept in status.talos.reportedAddresses) or booted from
// disk. Events from other addresses are acknowledged, ignored and counted. A host's status is
// written at most once per statusIntervalMs: events arriving meanwhile are applied together.
// Events drive the host's install conditions; duplicates (Talos delivers at least once) change
// nothing. Publish answers only after the host's status is written, so a lost write is resent.

import { setTimeout as sleep } from 'node:timers/promises';
import {
  status as GrpcStatus,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { INSTALL_CONDITIONS } from '../controllers/baremetalhost/hooks.ts';
import type { BareMetalHostStatus } from '../crds/baremetalhost.ts';
import { findCondition, setCondition } from '../runtime/conditions.ts';
import type { EventRecorder, EventType } from '../runtime/events.ts';
import { errorFields, type Logger } from '../runtime/logger.ts';
import { type ObjectRef, objectKey, timestamp } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { normalizeAddress } from './configserver.ts';
import { changeHostStatus, type Host, type HostStatusChange } from './host-status.ts';
import {
  decodeEventRequest,
  type EventEnvelope,
  type InstallSignal,
  interpret,
  type TalosEvent,
} from './install-events.ts';
import type { TalosMetrics } from './metrics.ts';

export const PUBLISH_PATH = '/events.EventSinkService/Publish';
const MAX_MESSAGE = 1024;
const SEEN_PER_HOST = 4096;

export interface EventSinkOptions {
  store: ResourceStore;
  events: EventRecorder;
  metrics: TalosMetrics;
  logger: Logger;
  /** The host cache (an informer's list). */
  hosts: () => readonly Host[];
  /** Changes whenever the cache does (the informer's resourceVersion), to rebuild the address index lazily. */
  version?: () => string;
  listen: { host: string; port: number };
  now?: () => Date;
  /** At most one status write per host this often (default 1000 ms); events in between are merged. */
  statusIntervalMs?: number;
}

/** An accepted event waiting to be applied to its host's status. */
interface Pending {
  envelope: EventEnvelope;
  from: string;
}

/** `ip:port`, `[v6]:port` or `v6:port` (grpc-js peer strings) → the address alone. */
export function peerAddress(peer: string): string {
  const bare = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracket) return normalizeAddress(bracket[1]);
  const colon = bare.lastIndexOf(':');
  return normalizeAddress(colon > 0 && /^\d+$/.test(bare.slice(colon + 1)) ? bare.slice(0, colon) : bare);
}

const truncate = (s: string) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 3)}...` : s);

interface Effect {
  change: HostStatusChange;
  event?: { type: EventType; reason: string; message: string };
}

/** The status change a signal makes on a host as it is now, or undefined when it changes nothing. */
export function effectOf(
  signal: InstallSignal,
  status: BareMetalHostStatus | undefined,
  now: Date,
): Effect | undefined {
  const conditions = status?.conditions;
  const is = (type: string, value: string) => findCondition(conditions, type)?.status === value;
  const time = timestamp(now);
  const message = truncate(signal.message);
  switch (signal.kind) {
    case 'installing':
      if (
        is(INSTALL_CONDITIONS.installed, 'True') ||
        findCondition(conditions, INSTALL_CONDITIONS.installed)?.reason === 'Installing'
      ) {
        return undefined;
      }
      return {
        change: {
          conditions: [
            { type: INSTALL_CONDITIONS.installed, status: 'False', reason: 'Installing', message },
          ],
          lastObservedBoot: { time, phase: 'installing', message },
        },
        event: { type: 'Normal', reason: 'Installing', message: `Talos: ${message}` },
      };
    case 'installed':
      if (is(INSTALL_CONDITIONS.installed, 'True') || is(INSTALL_CONDITIONS.installFailed, 'True'))
        return undefined;
      return {
        change: {
          conditions: [
            {
              type: INSTALL_CONDITIONS.installed,
              status: 'True',
              reason: 'InstallSequenceFinished',
              message,
            },
          ],
          lastObservedBoot: { time, phase: 'installed', message },
        },
        event: { type: 'Normal', reason: 'Installed', message: `Talos: ${message}` },
      };
    case 'failed':
      if (is(INSTALL_CONDITIONS.installed, 'True') || is(INSTALL_CONDITIONS.installFailed, 'True'))
        return undefined;
      return {
        change: {
          conditions: [
            { type: INSTALL_CONDITIONS.installFailed, status: 'True', reason: signal.reason, message },
          ],
          lastObservedBoot: {
            time,
            phase: status?.lastObservedBoot?.phase ?? 'config-fetched',
            message: `${signal.reason}: ${message}`,
          },
        },
        event: { type: 'Warning', reason: 'InstallFailed', message: `Talos ${signal.reason}: ${message}` },
      };
    case 'booted':
      if (is(INSTALL_CONDITIONS.bootedFromDisk, 'True')) return undefined;
      return {
        change: {
          conditions: [
            {
              type: INSTALL_CONDITIONS.bootedFromDisk,
              status: 'True',
              reason: 'BootSequenceStarted',
              message,
            },
          ],
          lastObservedBoot: { time, phase: 'booted', message },
        },
        event: { type: 'Normal', reason: 'BootedFromDisk', message: `Talos: ${message}` },
      };
    case 'wiped':
      // Only a host being cleaned (its cleaning boot fetched what it reports with) asks for a wipe.
      if (
        status?.provisioning?.state !== 'deprovisioning' ||
        status.talos?.tokenPurpose !== 'clean' ||
        is(INSTALL_CONDITIONS.cleaned, 'True')
      )
        return undefined;
      return {
        change: {
          conditions: [{ type: INSTALL_CONDITIONS.cleaned, status: 'True', reason: 'DiskWiped', message }],
        },
        event: { type: 'Normal', reason: 'Cleaned', message: `Talos: ${message}` },
      };
    case 'ready': {
      const current = findCondition(conditions, INSTALL_CONDITIONS.ready);
      const want = signal.ready ? 'True' : 'False';
      if (current?.status === want && current.message === message) return undefined;
      return {
        change: {
          conditions: [
            {
              type: INSTALL_CONDITIONS.ready,
              status: want,
              reason: signal.ready ? 'MachineReady' : 'MachineNotReady',
              message,
            },
          ],
        },
        ...(signal.ready && current?.status !== 'True'
          ? { event: { type: 'Normal' as const, reason: 'Ready', message: `Talos: ${message}` } }
          : {}),
      };
    }
  }
}

/** An address without its prefix length, IPv4-mapped IPv6 as IPv4, lowercase. */
const bareAddress = (address: string): string => {
  const slash = address.indexOf('/');
  return normalizeAddress(slash < 0 ? address : address.slice(0, slash)).toLowerCase();
};

/** The host's static addresses (its rendered network). */
const staticAddresses = (host: Host): string[] => (host.spec.network?.addresses ?? []).map(bareAddress);

/** Static addresses events may come from: those the machine reported, or all once it booted from disk. */
function acceptedStatic(host: Host): Set<string> {
  if (findCondition(host.status?.conditions, INSTALL_CONDITIONS.bootedFromDisk)?.status === 'True')
    return new Set(staticAddresses(host));
  return new Set((host.status?.talos?.reportedAddresses ?? []).map(bareAddress));
}

/** Who an address belongs to; `accepted` false: a static address the machine has not confirmed. */
interface Claim {
  ref: ObjectRef;
  accepted: boolean;
}

/** Address → host: the address that fetched the config, then the host's static addresses. */
function buildIndex(hosts: readonly Host[]): Map<string, Claim> {
  const best = new Map<string, Claim & { at: string; rank: number }>();
  const claim = (address: string, host: Host, rank: number) => {
    const at = host.status?.talos?.configFetchedAt ?? '';
    const ref = { namespace: host.metadata.namespace ?? '', name: host.metadata.name };
    const held = best.get(address);
    // A fetch address beats a confirmed static one, which beats an unconfirmed one; among equals
    // the most recent fetch wins (reused DHCP leases).
    if (!held || rank < held.rank || (rank === held.rank && at > held.at))
      best.set(address, { ref, at, rank, accepted: rank < 2 });
  };
  for (const host of hosts) {
    const fetchedFrom = host.status?.talos?.configFetchedFrom;
    if (!fetchedFrom) continue;
    claim(bareAddress(fetchedFrom), host, 0);
    const accepted = acceptedStatic(host);
    for (const address of staticAddresses(host)) claim(address, host, accepted.has(address) ? 1 : 2);
  }
  return new Map([...best].map(([address, { ref, accepted }]) => [address, { ref, accepted }]));
}

/**
 * The host's static addresses an AddressEvent from its fetch address newly reports, as the
 * status.talos change recording them (undefined: nothing new).
 */
function reportedChange(host: Host, event: TalosEvent, from: string): Record<string, unknown> | undefined {
  if (event.type !== 'AddressEvent') return undefined;
  const fetchedFrom = host.status?.talos?.configFetchedFrom;
  if (!fetchedFrom || bareAddress(fetchedFrom) !== from) return undefined;
  const known = host.status?.talos?.reportedAddresses ?? [];
  const statics = new Set(staticAddresses(host));
  const fresh = [...new Set(event.addresses.map(bareAddress))].filter(
    (a) => statics.has(a) && !known.includes(a),
  );
  return fresh.length ? { reportedAddresses: [...known, ...fresh] } : undefined;
}

/** Adds `next` to the change being built and to the status it leads to. */
function foldChange(
  status: BareMetalHostStatus,
  change: HostStatusChange,
  next: HostStatusChange,
  generation: number,
  now: Date,
): void {
  for (const c of next.conditions ?? []) {
    change.conditions = [...(change.conditions ?? []), c];
    status.conditions = setCondition(status.conditions, { ...c, observedGeneration: generation }, now);
  }
  if (next.lastObservedBoot) change.lastObservedBoot = status.lastObservedBoot = next.lastObservedBoot;
}

export class EventSink {
  #options: EventSinkOptions;
  #server = new Server();
  #now: () => Date;
  #index: { version: string; map: Map<string, Claim> } | undefined;
  #chains = new Map<string, Promise<void>>();
  /** Per host: events that will be applied together by the next write (not yet started). */
  #batches = new Map<string, { items: Pending[]; done: Promise<void> }>();
  /** Per host: when its status was last written (ms since the epoch). */
  #lastWrite = new Map<string, number>();
  #seen = new Map<string, Set<string>>();
  #port = 0;

  constructor(options: EventSinkOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    const service: ServiceDefinition = {
      Publish: {
        path: PUBLISH_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: () => Buffer.alloc(0),
        requestDeserialize: (bytes: Buffer) => decodeEventRequest(bytes),
        responseSerialize: () => Buffer.alloc(0), // EventResponse has no fields
        responseDeserialize: () => ({}),
      },
    };
    this.#server.addService(service, {
      Publish: (call: ServerUnaryCall<EventEnvelope, object>, callback: sendUnaryData<object>) => {
        this.#publish(call.request, peerAddress(call.getPeer())).then(
          () => callback(null, {}),
          (error: unknown) => {
            options.logger.warn(errorFields(error), 'could not record a Talos event; the sender will retry');
            callback({ code: GrpcStatus.UNAVAILABLE, details: 'event not recorded; retry' });
          },
        );
      },
    });
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<number> {
    const { host, port } = this.#options.listen;
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(target, ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
    return this.#port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, 2000);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await Promise.allSettled([...this.#chains.values()]);
  }

  /** The host whose events may come from an address (exposed for tests and the demo). */
  match(address: string): ObjectRef | undefined {
    const claim = this.#claim(address);
    return claim?.accepted ? claim.ref : undefined;
  }

  #claim(address: string): Claim | undefined {
    const version = this.#options.version?.() ?? String(Math.random());
    if (this.#index?.version !== version) {
      const hosts = this.#options.hosts();
      this.#index = { version, map: buildIndex(hosts) };
      this.#forgetGone(hosts);
    }
    return this.#index.map.get(bareAddress(address));
  }

  /** Drops what is kept per host (seen event ids, last write) for hosts that no longer exist. */
  #forgetGone(hosts: readonly Host[]): void {
    const live = new Set(
      hosts.map((h) => objectKey({ namespace: h.metadata.namespace ?? '', name: h.metadata.name })),
    );
    for (const map of [this.#seen, this.#lastWrite]) {
      for (const key of map.keys()) if (!live.has(key) && !this.#chains.has(key)) map.delete(key);
    }
  }

  /** Hosts something is kept for (for tests: it returns to zero when the hosts go). */
  get tracked(): number {
    return new Set([...this.#seen.keys(), ...this.#lastWrite.keys(), ...this.#chains.keys()]).size;
  }

  async #publish(envelope: EventEnvelope, from: string): Promise<void> {
    const { metrics, logger } = this.#options;
    metrics.events.inc({ type: envelope.event.type });
    const claim = this.#claim(from);
    if (!claim?.accepted) {
      const reason = claim ? 'unconfirmed-static-address' : 'unknown-address';
      metrics.unmatchedEvents.inc({ reason });
      logger.debug(
        { from, type: envelope.event.type, reason, ...(claim ? { host: objectKey(claim.ref) } : {}) },
        claim
          ? 'Talos event from a static address the machine has not reported: ignored'
          : 'Talos event from an address that fetched no config: ignored',
      );
      return;
    }
    const ref = claim.ref;
    const key = objectKey(ref);
    const seen = this.#seen.get(key) ?? new Set<string>();
    this.#seen.set(key, seen);
    if (envelope.id && seen.has(envelope.id)) return;
    await this.#enqueue(ref, { envelope, from });
    if (envelope.id) {
      seen.add(envelope.id);
      if (seen.size > SEEN_PER_HOST) seen.delete(seen.values().next().value as string);
    }
  }

  /**
   * Applies one host's events in order, one write at a time, and at most one write per interval:
   * an event arriving while a write waits for its slot joins it. Resolves once the write holding
   * the event is done (Publish answers then, so an event whose write failed is resent).
   */
  #enqueue(ref: ObjectRef, item: Pending): Promise<void> {
    const key = objectKey(ref);
    const open = this.#batches.get(key);
    if (open) {
      open.items.push(item);
      return open.done;
    }
    const items = [item];
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const done = previous
      .catch(() => {})
      .then(async () => {
        const interval = this.#options.statusIntervalMs ?? 1000;
        const wait = (this.#lastWrite.get(key) ?? 0) + interval - Date.now();
        if (wait > 0) await sleep(wait);
        this.#batches.delete(key);
        await this.#apply(ref, items);
      });
    this.#batches.set(key, { items, done });
    this.#chains.set(key, done);
    done
      .finally(() => {
        if (this.#chains.get(key) === done) this.#chains.delete(key);
      })
      .catch(() => {});
    return done;
  }

  async #apply(ref: ObjectRef, items: readonly Pending[]): Promise<void> {
    const { store, events, logger } = this.#options;
    const key = objectKey(ref);
    let effects: { event: NonNullable<Effect['event']>; from: string }[] = [];
    let read: string | undefined;
    const host = await changeHostStatus(
      store,
      ref,
      (h) => {
        read = h.metadata.resourceVersion;
        effects = [];
        // Each event sees the status as the events before it in this write left it.
        const status: BareMetalHostStatus = structuredClone(h.status ?? {});
        const change: HostStatusChange = {};
        for (const { envelope, from } of items) {
          const installing = status.lastObservedBoot?.phase === 'installing';
          const signal = interpret(envelope.event, { installing });
          const effect = signal ? effectOf(signal, status, this.#now()) : undefined;
          const talos = reportedChange({ ...h, status }, envelope.event, from);
          if (effect?.event) effects.push({ event: effect.event, from });
          if (effect) foldChange(status, change, effect.change, h.metadata.generation ?? 0, this.#now());
          if (talos) {
            change.talos = { ...change.talos, ...talos };
            status.talos = { ...status.talos, ...(talos as BareMetalHostStatus['talos']) };
          }
        }
        return Object.keys(change).length > 0 ? change : undefined;
      },
      this.#now,
    );
    if (host.metadata.resourceVersion !== read) this.#lastWrite.set(key, Date.now());
    for (const { event, from } of effects) {
      events.event(host, event.type, event.reason, event.message);
      logger.info({ host: key, from, reason: event.reason }, 'Talos install progress');
    }
  }
}
