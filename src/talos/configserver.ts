// The config server: `GET /v1/config/<namespace>.<host>?t=<token>` answers a host's rendered
// machine config once, only with the token of its current provisioning attempt, only before the
// token expires and only while the host is `provisioning`. Every refusal is the same 404 with the
// same body, decided on one code path with a constant-time compare, so a caller learns nothing
// about which hosts exist or how close a guess was. A second fetch with a used token is refused
// too, and alarmed (Event + condition): someone else may hold the URL. Plain HTTP by default,
// HTTPS with a configured certificate.
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { INSTALL_CONDITIONS } from '../controllers/baremetalhost/hooks.ts';
import { isConflict, isNotFound } from '../runtime/errors.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { errorFields, type Logger } from '../runtime/logger.ts';
import { type ObjectRef, timestamp } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { TALOS_HOST_CONDITIONS } from './conditions.ts';
import { changeHostStatus, type Host } from './host-status.ts';
import {
  CONFIG_KEY,
  HASH_ANNOTATION,
  HOST_KIND,
  renderedSecretName,
  SECRET_KIND,
  type SecretObject,
  secretText,
} from './kinds.ts';
import type { TalosMetrics } from './metrics.ts';
import { tokenMatches } from './tokens.ts';
import { stringifyDocument } from './yaml-stream.ts';

export const CONFIG_PATH_PREFIX = '/v1/config/';
const NOT_FOUND_BODY = '404 page not found\n';

/** `<namespace>.<name>`: namespaces are DNS labels (no dots), so the first dot splits. */
export const hostId = (ref: { namespace?: string; name: string }): string =>
  `${ref.namespace ?? ''}.${ref.name}`;

export function parseHostId(id: string): Required<ObjectRef> | undefined {
  const dot = id.indexOf('.');
  if (dot <= 0 || dot === id.length - 1) return undefined;
  return { namespace: id.slice(0, dot), name: id.slice(dot + 1) };
}

/** IPv4-mapped IPv6 (`::ffff:10.0.20.7`) as plain IPv4, so both servers see one address per machine. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

export interface ConfigServerOptions {
  store: ResourceStore;
  events: EventRecorder;
  metrics: TalosMetrics;
  logger: Logger;
  /** The host cache (an informer's): lookups must not touch the store, so refusals cost the same. */
  lookup: (ref: Required<ObjectRef>) => Host | undefined;
  listen: { host: string; port: number };
  /** `host:port` of the event sink, named in what a cleaning boot fetches. */
  eventSink?: string;
  /** PEM files; absent: plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  now?: () => Date;
}

type Verdict = { kind: 'serve'; host: Host } | { kind: 'refetch'; host: Host } | { kind: 'refuse' };

/** The decision from a host as cached or read; evaluates every check so refusals take one path. */
function judge(host: Host | undefined, token: string, now: Date): Verdict {
  const talos = host?.status?.talos;
  const tokenOk = tokenMatches(token, talos?.tokenHash);
  const provisioning = host?.status?.provisioning?.state === 'provisioning';
  const expires = Date.parse(talos?.tokenExpiresAt ?? '');
  const fresh = Number.isFinite(expires) && now.getTime() < expires;
  const fetched = talos?.configFetchedAt !== undefined;
  // A cleaning token serves only while the host is being deprovisioned (its wipe boot).
  const cleaning = talos?.tokenPurpose === 'clean';
  const inPhase = cleaning ? host?.status?.provisioning?.state === 'deprovisioning' : provisioning;
  if (host && tokenOk && fetched) return { kind: 'refetch', host };
  if (host && tokenOk && inPhase && fresh) return { kind: 'serve', host };
  return { kind: 'refuse' };
}

export class ConfigServer {
  #options: ConfigServerOptions;
  #server: Server;
  #now: () => Date;
  #address: AddressInfo | undefined;

  constructor(options: ConfigServerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res).catch((error: unknown) => {
        options.metrics.configRequests.inc({ result: 'error' });
        options.logger.error(errorFields(error), 'config request failed');
        if (!res.headersSent) notFound(res);
      });
    };
    this.#server = options.tls
      ? createHttpsServer(
          { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
          handler,
        )
      : createHttpServer(handler);
    this.#server.keepAliveTimeout = 5000;
    this.#server.requestTimeout = 30_000;
  }

  /** The event sink a cleaning boot is told to report to (known once the sink listens). */
  advertiseEventSink(address: string): void {
    this.#options = { ...this.#options, eventSink: address };
  }

  get scheme(): 'http' | 'https' {
    return this.#options.tls ? 'https' : 'http';
  }

  /** The bound address (after start). */
  get address(): AddressInfo {
    if (!this.#address) throw new Error('config server not started');
    return this.#address;
  }

  async start(): Promise<AddressInfo> {
    const { host, port } = this.#options.listen;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#address = this.#server.address() as AddressInfo;
    return this.#address;
  }

  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      // A machine that keeps a request open must not hold the controller's shutdown.
      const force = setTimeout(() => this.#server.closeAllConnections(), 2000);
      this.#server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { metrics, lookup } = this.#options;
    const url = new URL(req.url ?? '/', 'http://config.invalid');
    const from = normalizeAddress(req.socket.remoteAddress);
    const id = url.pathname.startsWith(CONFIG_PATH_PREFIX)
      ? url.pathname.slice(CONFIG_PATH_PREFIX.length)
      : '';
    let decoded: string;
    try {
      decoded = decodeURIComponent(id);
    } catch {
      // A malformed %-escape is no host id: a plain 400, and no error per request in the log.
      metrics.configRequests.inc({ result: 'bad-request' });
      this.#options.logger.debug({ from }, 'config request with a malformed %-escape in its path: 400');
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end('400 bad request\n');
      return;
    }
    const ref = req.method === 'GET' ? parseHostId(decoded) : undefined;
    const verdict = judge(ref ? lookup(ref) : undefined, url.searchParams.get('t') ?? '', this.#now());
    if (verdict.kind === 'refuse') {
      metrics.configRequests.inc({ result: 'refused' });
      notFound(res);
      return;
    }
    if (verdict.kind === 'refetch') {
      notFound(res);
      await this.#alarm(verdict.host, from);
      return;
    }
    await this.#serve(verdict.host, from, url.searchParams.get('t') ?? '', res);
  }

  /** Serves after re-checking on the stored host and claiming the token there (single use across replicas). */
  async #serve(cached: Host, from: string, token: string, res: ServerResponse): Promise<void> {
    const { store, metrics, logger, events } = this.#options;
    const ref = { namespace: cached.metadata.namespace ?? '', name: cached.metadata.name };
    for (let tries = 0; tries < 5; tries++) {
      const host = await store
        .get<Host>(HOST_KIND, ref)
        .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
      const verdict = judge(host, token, this.#now());
      if (verdict.kind === 'refuse') {
        metrics.configRequests.inc({ result: 'refused' });
        notFound(res);
        return;
      }
      if (verdict.kind === 'refetch') {
        notFound(res);
        await this.#alarm(verdict.host, from);
        return;
      }
      const current = verdict.host;
      const config =
        current.status?.talos?.tokenPurpose === 'clean'
          ? cleaningConfig(this.#options.eventSink)
          : await this.#renderedConfig(current);
      if (config === undefined) {
        // Not rendered (or not current): refuse without using the token; Talos retries.
        metrics.configRequests.inc({ result: 'not-rendered' });
        logger.warn({ host: hostId(ref), from }, 'config requested but no current rendered config; refused');
        notFound(res);
        return;
      }
      const at = timestamp(this.#now());
      const attempt = current.status?.talos?.tokenAttempt;
      try {
        await store.patchStatus(
          HOST_KIND,
          ref,
          {
            talos: { configFetchedFrom: from, configFetchedAt: at },
            lastObservedBoot: { time: at, phase: 'config-fetched', message: `config fetched from ${from}` },
          },
          { resourceVersion: current.metadata.resourceVersion },
        );
      } catch (error) {
        if (isConflict(error)) continue;
        throw error;
      }
      res.writeHead(200, {
        'content-type': 'application/yaml',
        'content-length': Buffer.byteLength(config),
        'cache-control': 'no-store',
      });
      res.end(config);
      metrics.configRequests.inc({ result: 'served' });
      logger.info({ host: hostId(ref), from, attempt }, 'config delivered');
      events.event(
        current,
        'Normal',
        'ConfigDelivered',
        `machine config fetched from ${from} (attempt ${attempt})`,
      );
      await changeHostStatus(
        store,
        ref,
        () => ({
          conditions: [
            {
              type: INSTALL_CONDITIONS.configDelivered,
              status: 'True',
              reason: 'ConfigFetched',
              message: `fetched from ${from} at ${at} with the token of attempt ${attempt}`,
            },
          ],
        }),
        this.#now,
      );
      return;
    }
    metrics.configRequests.inc({ result: 'error' });
    notFound(res);
  }

  /** The host's rendered config, when its Secret holds the config whose hash the host's status names. */
  async #renderedConfig(host: Host): Promise<string | undefined> {
    const want = host.status?.talos?.configHash;
    if (!want) return undefined;
    const secret = await this.#options.store
      .get<SecretObject>(SECRET_KIND, {
        namespace: host.metadata.namespace ?? '',
        name: renderedSecretName(host.metadata.name),
      })
      .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!secret || secret.metadata.annotations?.[HASH_ANNOTATION] !== want) return undefined;
    return secretText(secret, CONFIG_KEY);
  }

  /**
   * A used token again: one Event series per host (its message names no replaying address, so
   * replays from many addresses aggregate), the condition naming the first replayer (later ones
   * change nothing stored), and every replaying address in the log.
   */
  async #alarm(host: Host, from: string): Promise<void> {
    const { store, metrics, logger, events } = this.#options;
    const talos = host.status?.talos;
    const attempt = talos?.tokenAttempt ?? '?';
    const first = `${talos?.configFetchedFrom ?? '?'} at ${talos?.configFetchedAt ?? '?'}`;
    metrics.configRequests.inc({ result: 'refetch' });
    logger.warn(
      { host: hostId({ namespace: host.metadata.namespace, name: host.metadata.name }), from },
      'used config token presented again',
    );
    events.event(
      host,
      'Warning',
      'ConfigRefetched',
      `the config token of attempt ${attempt} was used again (first fetch from ${first}); refused: someone else may hold the URL`,
    );
    // A machine refused its config cannot install (Talos waits in maintenance mode): unless the first
    // fetcher is already installing (the real machine got it), this attempt ends and the next one
    // gets a new URL.
    const phase = host.status?.lastObservedBoot?.phase;
    const installing = phase === 'installing' || phase === 'installed' || phase === 'booted';
    const ending = host.status?.provisioning?.state === 'provisioning' && !installing;
    await changeHostStatus(
      store,
      { namespace: host.metadata.namespace ?? '', name: host.metadata.name },
      (h) => {
        const held = h.status?.conditions?.find((c) => c.type === TALOS_HOST_CONDITIONS.configRefetched);
        const said = `the config token of attempt ${attempt} was used again from `;
        if (held?.status === 'True' && held.message.startsWith(said)) return undefined;
        const message = `${said}${from} (first fetch from ${first}); refused: someone else may hold the URL`;
        return {
          conditions: [
            { type: TALOS_HOST_CONDITIONS.configRefetched, status: 'True', reason: 'TokenReused', message },
            ...(ending
              ? [
                  {
                    type: INSTALL_CONDITIONS.installFailed,
                    status: 'True' as const,
                    reason: 'ConfigRefetched',
                    message: `the config was refused to ${from} because its one-time URL had already been used from ${talos?.configFetchedFrom ?? '?'}`,
                  },
                ]
              : []),
          ],
        };
      },
      this.#now,
    );
  }
}

/**
 * What a cleaning (wipe) boot fetches: only where to report, no machine config. Talos takes a
 * config without a v1alpha1 document as incomplete, keeps it active and waits in maintenance mode
 * after the wipe, reporting to this sink; nothing of the cluster's secrets is in it.
 */
export function cleaningConfig(eventSink: string | undefined): string | undefined {
  if (!eventSink) return undefined;
  return stringifyDocument({ apiVersion: 'v1alpha1', kind: 'EventSinkConfig', endpoint: eventSink });
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(NOT_FOUND_BODY),
    'cache-control': 'no-store',
  });
  res.end(NOT_FOUND_BODY);
}
