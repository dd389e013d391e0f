// A small Redfish HTTP client over undici: session auth with Basic fallback, re-login on 401, retries with
// backoff on 5xx/429 (honouring Retry-After), a deadline per request that also covers the body, a cap on
// body size, zod-validated JSON, ETag/If-Match, and 202 task-monitor polling. Every failure is a typed
// BmcError; no password or session token can reach a message.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Agent, fetch } from 'undici';
import type { z } from 'zod';
import type { RedfishAddress } from '../address.ts';
import type { BmcCredentials, CredentialProvider } from '../credentials.ts';
import type { BmcNoticeSink } from '../driver.ts';
import {
  BmcAuthError,
  BmcError,
  BmcNotFoundError,
  BmcProtocolError,
  BmcTaskError,
  BmcTimeoutError,
  BmcTlsError,
  BmcUnreachableError,
} from '../errors.ts';
import { snippet } from '../redact.ts';
import { redfishError, type ServiceRoot, serviceRoot, task } from './schemas.ts';

export interface RedfishTlsOptions {
  /** PEM CA bundle that signed the BMC's certificate (in addition to the system roots). */
  ca?: string | string[];
  /** Accept any certificate. Only when the host's manifest says so: it allows impersonating the BMC. */
  disableCertificateVerification?: boolean;
}

export interface RedfishClientOptions {
  address: RedfishAddress;
  credentials: CredentialProvider;
  tls?: RedfishTlsOptions;
  /** Deadline for one HTTP exchange, body included (default 30 s). */
  requestTimeoutMs?: number;
  /** Extra attempts after a 5xx/429 or a refused connection (default 3). */
  retries?: number;
  /** First backoff delay; doubles per attempt, with jitter (default 500 ms). */
  retryBaseMs?: number;
  /** Longest Retry-After honoured; a longer one fails the request instead (default 60 s). */
  maxRetryAfterMs?: number;
  /** Largest response body accepted (default 8 MiB). */
  maxBodyBytes?: number;
  /** 'auto' uses SessionService when the service advertises it; 'basic' never does (default auto). */
  auth?: 'auto' | 'basic';
  logger?: Logger;
  /** Told once when a failed session login makes the client fall back to Basic auth. */
  onNotice?: BmcNoticeSink;
}

export interface RequestOptions {
  body?: unknown;
  ifMatch?: string;
  /** Overrides the client's retry count (e.g. 0 for optional inventory parts). */
  retries?: number;
  timeoutMs?: number;
  /** Statuses returned to the caller instead of thrown (e.g. 412 for an ETag retry). */
  passStatuses?: readonly number[];
}

export interface RedfishResponse<T> {
  status: number;
  data: T;
  etag: string | undefined;
  location: string | undefined;
  retryAfterMs: number | undefined;
}

type AuthState =
  | { mode: 'unknown' }
  | { mode: 'basic' }
  | { mode: 'session'; token: string; location: string | undefined; sessionsPath: string };

const retryableStatuses = new Set([429, 500, 502, 503, 504]);
// An action (POST) that got a 500/502/504 may have run; only "not processed" answers are safe to repeat.
const retryableForActions = new Set([429, 503]);
// The request never reached the BMC's application, so even a POST is safe to repeat.
const notSentCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
const unreachableCodes = new Set([
  ...notSentCodes,
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);
const tlsCodes = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
]);

const SERVICE_ROOT = '/redfish/v1/';
const DEFAULT_SESSIONS_PATH = '/redfish/v1/SessionService/Sessions';

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function errorCode(error: unknown): string | undefined {
  // undici wraps socket errors: TypeError('fetch failed', { cause: Error{code} }), sometimes nested.
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function causeMessage(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    parts.push(current.message);
    current = current.cause;
  }
  return parts.join(': ') || String(error);
}

export class RedfishClient {
  readonly address: RedfishAddress;
  private readonly provider: CredentialProvider;
  private readonly agent: Agent;
  private readonly requestTimeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly maxBodyBytes: number;
  private readonly authPreference: 'auto' | 'basic';
  private readonly logger: Logger | undefined;
  private readonly onNotice: BmcNoticeSink | undefined;
  private basicFallbackTold = false;
  private credentials: BmcCredentials | undefined;
  private auth: AuthState = { mode: 'unknown' };
  private root: ServiceRoot | undefined;
  private closed = false;

  constructor(options: RedfishClientOptions) {
    this.address = options.address;
    this.provider = options.credentials;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.retries = options.retries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 500;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
    this.maxBodyBytes = options.maxBodyBytes ?? 8 * 1024 * 1024;
    this.authPreference = options.auth ?? 'auto';
    this.logger = options.logger;
    this.onNotice = options.onNotice;
    const verify = options.tls?.disableCertificateVerification !== true;
    this.agent = new Agent({
      connect: {
        rejectUnauthorized: verify,
        ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
        timeout: this.requestTimeoutMs,
      },
      // The per-request deadline below is the real limit; these only stop undici's own longer defaults.
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
      keepAliveTimeout: 10_000,
    });
    if (!verify) this.logger?.warn('TLS certificate verification disabled');
  }

  private get bmc(): string {
    return this.address.display;
  }

  private secrets(): (string | undefined)[] {
    return [this.credentials?.password, this.auth.mode === 'session' ? this.auth.token : undefined];
  }

  /** How the client authenticates now; for tests and diagnostics. */
  get authMode(): 'unknown' | 'basic' | 'session' {
    return this.auth.mode;
  }

  /**
   * Reads the credentials for the coming operation. A changed version (rotated Secret) drops the session
   * so the next request logs in with the new credentials.
   */
  async refreshCredentials(): Promise<void> {
    const next = await this.provider();
    if (this.credentials && this.credentials.version !== next.version) {
      this.logger?.info('BMC credentials changed; logging in again');
      await this.logout();
      if (this.auth.mode === 'basic' && this.authPreference === 'auto') this.auth = { mode: 'unknown' };
    }
    this.credentials = next;
  }

  async serviceRoot(): Promise<ServiceRoot> {
    if (!this.root) await this.ensureAuth();
    return this.root!;
  }

  async get<S extends z.ZodType>(path: string, schema: S, options: RequestOptions = {}) {
    return this.request('GET', path, schema, options);
  }

  async post(path: string, body: unknown, options: RequestOptions = {}) {
    return this.request('POST', path, undefined, { ...options, body });
  }

  async patch(path: string, body: unknown, options: RequestOptions = {}) {
    return this.request('PATCH', path, undefined, { ...options, body });
  }

  /** One request with auth, retries and validation. `schema` undefined: body is not parsed. */
  async request<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S | undefined,
    options: RequestOptions = {},
  ): Promise<RedfishResponse<z.infer<S>>> {
    if (this.closed) throw new Error('RedfishClient used after close()');
    await this.ensureAuth();
    let relogged = false;
    for (;;) {
      const res = await this.withRetries(method, path, options, true);
      if (res.status === 401) {
        if (this.auth.mode === 'session' && !relogged) {
          // Sessions expire (idle timeout, BMC reboot, another client's logout): log in once more.
          relogged = true;
          this.logger?.debug('Redfish session rejected; logging in again');
          this.auth = { mode: 'unknown' };
          await this.ensureAuth();
          continue;
        }
        throw this.authError(res.status, res.text);
      }
      return this.finish(method, path, res, schema, options);
    }
  }

  /** Follows a 202 Accepted task monitor until the task ends; throws BmcTaskError if it failed. */
  async waitForTask(monitor: string, timeoutMs: number, pollMs = 1000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen202 = false;
    for (;;) {
      const res = await this.request('GET', monitor, undefined, { passStatuses: [202, 404] });
      const raw = res.data as unknown;
      if (res.status === 404) {
        // Services may delete a finished task monitor; a vanished monitor we already saw running is done.
        if (seen202) return;
        throw new BmcProtocolError(this.bmc, `task monitor ${monitor} does not exist`, { status: 404 });
      }
      if (res.status === 202) seen202 = true;
      const parsed = task.safeParse(raw);
      const state = parsed.success ? parsed.data.TaskState : undefined;
      if (res.status !== 202 && (!state || state === 'Completed')) {
        if (parsed.success && parsed.data.TaskStatus === 'Critical') {
          throw new BmcTaskError(
            this.bmc,
            this.taskMessages(parsed.data) || 'task ended with status Critical',
          );
        }
        return;
      }
      if (state && ['Exception', 'Killed', 'Cancelled', 'Interrupted'].includes(state)) {
        const detail = parsed.success ? this.taskMessages(parsed.data) : '';
        throw new BmcTaskError(this.bmc, `task ${state}${detail ? `: ${detail}` : ''}`);
      }
      const wait = Math.min(res.retryAfterMs ?? pollMs, Math.max(0, deadline - Date.now()));
      if (Date.now() + wait >= deadline) {
        throw new BmcTimeoutError(this.bmc, `task ${monitor} to finish`, timeoutMs);
      }
      await sleep(wait);
    }
  }

  private taskMessages(t: z.infer<typeof task>): string {
    return snippet((t.Messages ?? []).map((m) => m.Message ?? m.MessageId ?? '').join('; '), this.secrets());
  }

  /** Logs out of the session (if any) and releases connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.logout();
    this.closed = true;
    await this.agent.close().catch(() => {});
  }

  private async logout(): Promise<void> {
    if (this.auth.mode !== 'session') return;
    const { location, token } = this.auth;
    this.auth = { mode: 'unknown' };
    if (!location) return;
    try {
      const res = await this.exchange('DELETE', location, { timeoutMs: 5000 }, { 'x-auth-token': token });
      this.logger?.debug({ status: res.status }, 'Redfish session logged out');
    } catch (error) {
      this.logger?.debug({ error: (error as Error).message }, 'Redfish logout failed');
    }
  }

  private authInFlight: Promise<void> | undefined;

  /** Discovers the service and logs in once, however many requests ask at the same time. */
  private async ensureAuth(): Promise<void> {
    if (this.auth.mode !== 'unknown' && this.root && this.credentials) return;
    this.authInFlight ??= this.authenticate().finally(() => {
      this.authInFlight = undefined;
    });
    return this.authInFlight;
  }

  private async authenticate(): Promise<void> {
    if (!this.credentials) await this.refreshCredentials();
    if (this.auth.mode !== 'unknown' && this.root) return;
    if (!this.root) {
      // The service root is readable without credentials per the spec; some BMCs still want them.
      let res = await this.withRetries('GET', SERVICE_ROOT, {}, false);
      if (res.status === 401 || res.status === 403)
        res = await this.withRetries('GET', SERVICE_ROOT, {}, 'basic');
      if (res.status === 401 || res.status === 403) throw this.authError(res.status, res.text);
      this.root = (await this.finish('GET', SERVICE_ROOT, res, serviceRoot, {})).data;
    }
    if (this.auth.mode !== 'unknown') return;
    const sessionsPath = this.root.Links?.Sessions?.['@odata.id'];
    if (this.authPreference === 'basic' || !sessionsPath) {
      this.auth = { mode: 'basic' };
      return;
    }
    await this.login(sessionsPath);
  }

  private async login(sessionsPath: string): Promise<void> {
    const creds = this.credentials!;
    const res = await this.withRetries(
      'POST',
      sessionsPath || DEFAULT_SESSIONS_PATH,
      { body: { UserName: creds.username, Password: creds.password } },
      false,
    );
    if (res.status === 401 || res.status === 403) throw this.authError(res.status, res.text);
    const token = res.headers.get('x-auth-token');
    if (res.status >= 200 && res.status < 300 && token) {
      let location = res.headers.get('location') ?? undefined;
      if (!location) {
        try {
          location = (JSON.parse(res.text) as { '@odata.id'?: string })['@odata.id'];
        } catch {
          // no body: logout will be skipped, the session expires on the BMC
        }
      }
      this.auth = {
        mode: 'session',
        token,
        location: location ? this.pathOf(location) : undefined,
        sessionsPath,
      };
      this.logger?.debug('Redfish session opened');
      return;
    }
    // Advertised but unusable (404/405/501, or 2xx without a token): Basic auth still works on most BMCs.
    this.logger?.info({ status: res.status }, 'Redfish session login unavailable; using Basic auth');
    this.auth = { mode: 'basic' };
    if (!this.basicFallbackTold) {
      this.basicFallbackTold = true;
      const why =
        res.status >= 200 && res.status < 300 ? `HTTP ${res.status} without a token` : `HTTP ${res.status}`;
      this.onNotice?.({
        code: 'BasicAuthFallback',
        message: `session login at ${sessionsPath} failed (${why}); using Basic auth, so every request carries the password`,
      });
    }
  }

  private authError(status: number, body: string): BmcAuthError {
    const detail =
      status === 403 ? 'HTTP 403 (the account lacks the privilege for this operation)' : `HTTP ${status}`;
    const message = this.errorDetail(body);
    return new BmcAuthError(this.bmc, message ? `${detail}: ${message}` : detail, {
      ...(this.credentials ? { username: this.credentials.username } : {}),
    });
  }

  /** Absolute URLs on this BMC (Location headers) are reduced to their path; others are kept, and refused when used. */
  private pathOf(location: string): string {
    if (location.startsWith('/')) return location;
    try {
      const url = new URL(location);
      if (url.origin !== new URL(this.address.baseUrl).origin) return location;
      return `${url.pathname}${url.search}`;
    } catch {
      return location;
    }
  }

  /**
   * Where a path (a link the BMC gave, or one of ours) is fetched: only an absolute path on the
   * BMC's own origin. A link such as `@other-host/x`, `//other-host/x` or `http://other-host/x`
   * would otherwise send the BMC credentials to whoever the BMC names.
   */
  private urlOf(path: string): string {
    const base = new URL(this.address.baseUrl);
    let url: URL | undefined;
    if (path.startsWith('/') && !path.startsWith('//') && !path.includes('\\')) {
      try {
        url = new URL(path, base);
      } catch {
        url = undefined;
      }
    }
    if (url?.origin !== base.origin) {
      const shown = path.length > 200 ? `${path.slice(0, 197)}...` : path;
      throw new BmcProtocolError(
        this.bmc,
        `link "${shown}" is not an absolute path on the BMC (${base.origin}); not followed`,
      );
    }
    return url.href;
  }

  private async withRetries(
    method: string,
    path: string,
    options: RequestOptions,
    auth: boolean | 'basic',
  ): Promise<RawResponse> {
    const retries = options.retries ?? this.retries;
    for (let attempt = 0; ; attempt++) {
      let res: RawResponse;
      try {
        res = await this.exchange(method, path, options, this.authHeaders(auth));
      } catch (error) {
        const code = error instanceof BmcUnreachableError ? errorCode(error.cause) : undefined;
        const safeToRepeat = method === 'GET' || (code !== undefined && notSentCodes.has(code));
        if (attempt < retries && error instanceof BmcUnreachableError && safeToRepeat) {
          await this.backoff(attempt, undefined, method, path, code ?? 'network error');
          continue;
        }
        throw error;
      }
      const retryable = method === 'POST' ? retryableForActions : retryableStatuses;
      if (retryable.has(res.status) && attempt < retries) {
        const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
        if (retryAfter !== undefined && retryAfter > this.maxRetryAfterMs) return res;
        await this.backoff(attempt, retryAfter, method, path, `HTTP ${res.status}`);
        continue;
      }
      return res;
    }
  }

  private async backoff(
    attempt: number,
    retryAfterMs: number | undefined,
    method: string,
    path: string,
    why: string,
  ): Promise<void> {
    const exp = Math.min(this.retryBaseMs * 2 ** attempt, 10_000);
    const delay = retryAfterMs ?? exp / 2 + Math.random() * (exp / 2);
    this.logger?.debug({ method, path, why, attempt, delayMs: Math.round(delay) }, 'retrying');
    await sleep(delay);
  }

  private authHeaders(auth: boolean | 'basic'): Record<string, string> {
    if (auth === false || !this.credentials) return {};
    if (auth === true && this.auth.mode === 'session') return { 'x-auth-token': this.auth.token };
    const { username, password } = this.credentials;
    return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
  }

  /** One HTTP exchange under a deadline covering headers and body. */
  private async exchange(
    method: string,
    path: string,
    options: RequestOptions,
    authHeaders: Record<string, string>,
  ): Promise<RawResponse> {
    const url = this.urlOf(path);
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const headers: Record<string, string> = {
      accept: 'application/json',
      'odata-version': '4.0',
      ...authHeaders,
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.ifMatch) headers['if-match'] = options.ifMatch;
    const what = `${method} ${path}`;
    try {
      const res = await fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        dispatcher: this.agent,
        signal: controller.signal,
        redirect: 'manual',
      });
      const text = await this.readBody(res, what, controller);
      return { status: res.status, headers: res.headers, text };
    } catch (error) {
      if (error instanceof BmcError) throw error;
      if (controller.signal.aborted) throw new BmcTimeoutError(this.bmc, what, timeoutMs, { cause: error });
      const code = errorCode(error);
      if (code && tlsCodes.has(code)) throw new BmcTlsError(this.bmc, code, { cause: error });
      const detail = code && unreachableCodes.has(code) ? code : causeMessage(error);
      throw new BmcUnreachableError(this.bmc, `${what}: ${detail}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  private async readBody(
    res: Awaited<ReturnType<typeof fetch>>,
    what: string,
    controller: AbortController,
  ): Promise<string> {
    if (!res.body) return '';
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += chunk.byteLength;
      if (size > this.maxBodyBytes) {
        controller.abort();
        throw new BmcProtocolError(this.bmc, `${what}: response body larger than ${this.maxBodyBytes} bytes`);
      }
      chunks.push(Buffer.from(chunk));
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private errorDetail(body: string): string {
    if (!body) return '';
    try {
      const parsed = redfishError.safeParse(JSON.parse(body));
      if (parsed.success) {
        const extended = (parsed.data.error['@Message.ExtendedInfo'] ?? [])
          .map((m) => m.Message ?? m.MessageId)
          .filter(Boolean);
        return snippet(
          [parsed.data.error.message ?? parsed.data.error.code ?? '', ...extended].filter(Boolean).join('; '),
          this.secrets(),
          240,
        );
      }
    } catch {
      // not JSON: fall through to a plain excerpt
    }
    return this.describeNonJson(body);
  }

  private describeNonJson(body: string): string {
    const title = /<title[^>]*>([^<]*)<\/title>/i.exec(body)?.[1];
    if (/^\s*</.test(body)) {
      return `an HTML page${title ? ` ("${snippet(title, this.secrets(), 80)}")` : ''} instead of JSON`;
    }
    return `"${snippet(body, this.secrets(), 120)}"`;
  }

  private finish<S extends z.ZodType>(
    method: string,
    path: string,
    res: RawResponse,
    schema: S | undefined,
    options: RequestOptions,
  ): RedfishResponse<z.infer<S>> {
    const what = `${method} ${path}`;
    const base = {
      status: res.status,
      etag: res.headers.get('etag') ?? undefined,
      location: res.headers.get('location') ? this.pathOf(res.headers.get('location')!) : undefined,
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
    };
    const passed = options.passStatuses?.includes(res.status) === true;
    if (!passed && (res.status < 200 || res.status >= 300)) {
      const detail = this.errorDetail(res.text);
      const message = `${what}: HTTP ${res.status}${detail ? `: ${detail}` : ''}`;
      if (res.status === 404) throw new BmcNotFoundError(this.bmc, `${path} does not exist (${message})`);
      if (res.status === 403) throw this.authError(res.status, res.text);
      throw new BmcProtocolError(this.bmc, message, { status: res.status });
    }
    if (!schema) {
      let data: unknown;
      if (res.text.trim() !== '') {
        try {
          data = JSON.parse(res.text);
        } catch {
          data = undefined;
        }
      }
      return { ...base, data: data as z.infer<S> };
    }
    if (res.text.trim() === '') {
      throw new BmcProtocolError(this.bmc, `${what}: HTTP ${res.status} with an empty body`, {
        status: res.status,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      const looksHtml = /^\s*</.test(res.text);
      const detail = looksHtml ? this.describeNonJson(res.text) : 'truncated or malformed JSON';
      throw new BmcProtocolError(this.bmc, `${what}: HTTP ${res.status} with ${detail}`, {
        status: res.status,
      });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? issue.path.join('.') : '(root)';
      throw new BmcProtocolError(
        this.bmc,
        `${what}: unexpected JSON shape at ${where}: ${snippet(issue?.message ?? 'invalid', this.secrets(), 120)}`,
        { status: res.status },
      );
    }
    const bodyEtag = (json as { '@odata.etag'?: unknown })['@odata.etag'];
    return {
      ...base,
      etag: base.etag ?? (typeof bodyEtag === 'string' ? bodyEtag : undefined),
      data: parsed.data,
    };
  }
}

interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}
