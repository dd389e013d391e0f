// Failures talking to Matchbox, as typed errors that tell a person what to fix. mTLS set-up is
// Matchbox users' most common problem, and grpc-js reports every handshake failure as the same
// UNAVAILABLE "No connection established", so each cause is recognised from the TLS layer's text
// (observed against the real Matchbox, see test/integration/matchbox/client-errors.test.ts):
//
//   server cert lacks the endpoint host  ERR_TLS_CERT_ALTNAME_INVALID "Hostname/IP does not match certificate's altnames"
//   server cert from another CA          "unable to verify the first certificate" (or "…local issuer…", "self-signed…")
//   client cert rejected by the server   "…alert unknown ca…SSL alert number 48" / "alert bad certificate…number 42"
//   plain HTTP port, not gRPC            "wrong version number"
//   server down                          "connect ECONNREFUSED <addr>"
//   server hung                          DEADLINE_EXCEEDED "Deadline exceeded after …"
//   Get/Delete of a missing object       UNKNOWN "open|remove <path>: no such file or directory"
//   validation                           UNKNOWN "Id is required" / "Group requires a Profile" / "json: …"
//
// Messages name the endpoint and never contain key material.
import type { CertSummary } from './tls.ts';

export type MatchboxErrorReason =
  | 'Config'
  | 'Unreachable'
  | 'ServerNameMismatch'
  | 'UnknownCA'
  | 'ClientCertRejected'
  | 'TLSFailed'
  | 'Invalid'
  | 'NotFound'
  | 'ServerError';

export abstract class MatchboxError extends Error {
  abstract readonly reason: MatchboxErrorReason;
  /** host:port of the gRPC endpoint ('' for configuration errors found before one is known). */
  readonly endpoint: string;
  constructor(endpoint: string, message: string) {
    super(message);
    this.endpoint = endpoint;
  }
}

/** Bad client configuration (endpoint form, PEM contents); `field` names what to fix. */
export class MatchboxConfigError extends MatchboxError {
  readonly reason = 'Config';
  readonly field: string;
  constructor(field: string, problem: string, endpoint = '') {
    super(endpoint, `Matchbox client ${field}${endpoint ? ` for ${endpoint}` : ''} ${problem}`);
    this.name = 'MatchboxConfigError';
    this.field = field;
  }
}

export type UnreachableCause = 'refused' | 'timeout' | 'dns' | 'network';

export class MatchboxUnreachableError extends MatchboxError {
  readonly reason = 'Unreachable';
  readonly failure: UnreachableCause;
  constructor(endpoint: string, failure: UnreachableCause, detail: string) {
    super(endpoint, `Matchbox at ${endpoint} is unreachable: ${detail}`);
    this.name = 'MatchboxUnreachableError';
    this.failure = failure;
  }
}

/** The server certificate does not name the host metalbox dials (its subjectAltNames). */
export class MatchboxServerNameMismatchError extends MatchboxError {
  readonly reason = 'ServerNameMismatch';
  readonly host: string;
  readonly certNames: string[] | undefined;
  constructor(endpoint: string, host: string, certNames: string[] | undefined) {
    const names =
      certNames === undefined
        ? ''
        : ` (it names ${certNames.length ? certNames.join(', ') : 'no subjectAltNames at all'})`;
    super(
      endpoint,
      `TLS handshake with Matchbox at ${endpoint} failed: the server certificate does not name ${host}${names}. ` +
        `Use an endpoint host the certificate lists, or re-issue Matchbox's server certificate with subjectAltName ` +
        `${isIpLiteral(host) ? 'IP' : 'DNS'}:${host}.`,
    );
    this.name = 'MatchboxServerNameMismatchError';
    this.host = host;
    this.certNames = certNames;
  }
}

/** The server certificate is not signed by the CA metalbox was given (wrong ca.crt). */
export class MatchboxUnknownCAError extends MatchboxError {
  readonly reason = 'UnknownCA';
  constructor(
    endpoint: string,
    detail: string,
    serverIssuer: string | undefined,
    configuredCA: string | undefined,
  ) {
    const issued = serverIssuer ? ` is issued by "${serverIssuer}", which` : '';
    const ca = configuredCA ? ` ("${configuredCA}")` : '';
    super(
      endpoint,
      `TLS handshake with Matchbox at ${endpoint} failed: the server certificate${issued} is not signed by the ` +
        `configured CA${ca} (${detail}). Set the client's CA (ca.crt) to the CA that signed Matchbox's server certificate.`,
    );
    this.name = 'MatchboxUnknownCAError';
  }
}

/** Matchbox refused metalbox's client certificate during the handshake. */
export class MatchboxClientCertRejectedError extends MatchboxError {
  readonly reason = 'ClientCertRejected';
  /** The TLS alert Matchbox sent, e.g. "unknown ca", "bad certificate". */
  readonly alert: string;
  constructor(endpoint: string, alert: string, client: CertSummary | undefined) {
    const who = client ? ` (subject "${client.subject}", issued by "${client.issuer}")` : '';
    super(
      endpoint,
      `Matchbox at ${endpoint} rejected metalbox's client certificate${who}: TLS alert "${alert}". ${clientCertHint(alert, client)}`,
    );
    this.name = 'MatchboxClientCertRejectedError';
    this.alert = alert;
  }
}

function clientCertHint(alert: string, client: CertSummary | undefined): string {
  const ca = 'the CA Matchbox was started with (-ca-file)';
  if (alert === 'unknown ca')
    return `Matchbox does not trust the CA that signed it: issue the client certificate from ${ca}.`;
  if (alert === 'certificate expired')
    return `The client certificate expired${client ? ` (${client.validTo})` : ''}: renew it.`;
  if (alert === 'certificate required')
    return 'No client certificate was sent: configure tls.crt and tls.key.';
  const eku = client?.extendedKeyUsage;
  if (eku && !eku.includes('clientAuth')) {
    return `Its extended key usage is ${eku.join(', ')}, without clientAuth: issue a client certificate (extendedKeyUsage = clientAuth) from ${ca}.`;
  }
  return `It must be signed by ${ca}, be valid now, and carry extendedKeyUsage clientAuth.`;
}

/** Any other TLS failure (protocol mismatch, expired server certificate, ...). */
export class MatchboxTLSError extends MatchboxError {
  readonly reason = 'TLSFailed';
  constructor(endpoint: string, detail: string) {
    super(endpoint, `TLS handshake with Matchbox at ${endpoint} failed: ${detail}`);
    this.name = 'MatchboxTLSError';
  }
}

export type MatchboxObjectKind = 'profile' | 'group' | 'generic template' | 'ignition template';

/** Matchbox's validation refused the object; `detail` is Matchbox's own message. */
export class MatchboxInvalidError extends MatchboxError {
  readonly reason = 'Invalid';
  readonly kind: MatchboxObjectKind;
  readonly id: string;
  readonly detail: string;
  constructor(endpoint: string, kind: MatchboxObjectKind, id: string, detail: string) {
    super(endpoint, `Matchbox at ${endpoint} refused ${kind} "${id}": ${detail}`);
    this.name = 'MatchboxInvalidError';
    this.kind = kind;
    this.id = id;
    this.detail = detail;
  }
}

export class MatchboxNotFoundError extends MatchboxError {
  readonly reason = 'NotFound';
  readonly kind: MatchboxObjectKind;
  readonly id: string;
  constructor(endpoint: string, kind: MatchboxObjectKind, id: string, message?: string) {
    super(endpoint, message ?? `${kind} "${id}" not found on Matchbox at ${endpoint}`);
    this.name = 'MatchboxNotFoundError';
    this.kind = kind;
    this.id = id;
  }
}

/** Matchbox answered with an error it gives no meaning to (disk full, permission denied, ...). */
export class MatchboxServerError extends MatchboxError {
  readonly reason = 'ServerError';
  readonly code: number;
  constructor(endpoint: string, operation: string, code: number, detail: string) {
    super(endpoint, `Matchbox at ${endpoint} failed ${operation}: ${detail}`);
    this.name = 'MatchboxServerError';
    this.code = code;
  }
}

export const isMatchboxError = (e: unknown): e is MatchboxError => e instanceof MatchboxError;
export const isNotFound = (e: unknown): e is MatchboxNotFoundError => e instanceof MatchboxNotFoundError;
export const isUnreachable = (e: unknown): e is MatchboxUnreachableError =>
  e instanceof MatchboxUnreachableError;

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

// ---------------------------------------------------------------------------------------------
// Classification of grpc-js failures

/** gRPC status codes used here (numeric, as on the wire). */
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const UNKNOWN = 2;
const UNAVAILABLE = 14;

/** The call a failure happened in. */
export interface CallContext {
  endpoint: string;
  host: string;
  /** e.g. "GroupPut" */
  operation: string;
  kind?: MatchboxObjectKind;
  id?: string;
  timeoutMs: number;
  client?: CertSummary;
  configuredCA?: CertSummary;
}

/** How a failed call's TLS/transport text reads; `tlsProbe` says whether a server-cert look helps. */
export type FailureClass =
  | { type: 'refused'; detail: string }
  | { type: 'timeout'; connecting: boolean }
  | { type: 'dns' }
  | { type: 'network'; detail: string }
  | { type: 'serverName'; detail: string }
  | { type: 'unknownCA'; detail: string }
  | { type: 'clientRejected'; alert: string }
  | { type: 'notTLS' }
  | { type: 'tls'; detail: string }
  | { type: 'missing'; detail: string }
  | { type: 'invalid'; detail: string }
  | { type: 'server'; code: number; detail: string };

const UNKNOWN_CA_TEXTS = [
  'unable to verify the first certificate',
  'unable to get local issuer certificate',
  'self-signed certificate in certificate chain',
  'self signed certificate in certificate chain',
  'self-signed certificate',
  'self signed certificate',
  'unable to get issuer certificate',
];
// Go's Matchbox reports validation failures with these texts (storagepb AssertValid, metadata JSON).
const INVALID_TEXTS = [
  /^Id is required$/,
  /^Group requires a Profile$/,
  /^json: /,
  /^invalid character /,
  /^unexpected end of JSON/,
];

/** The last error grpc-js recorded for the connection, without its wrapper text. */
function lastError(details: string): string {
  const m =
    /Last error: (?:Error(?: \[[A-Z_]+\])?: )?([\s\S]*?)(?: \(\d{4}-\d\d-\d\dT[^)]*\))?\.?(?: Resolution note: .*)?$/.exec(
      details,
    );
  return (m?.[1] ?? details).trim();
}

export function classify(code: number, details: string): FailureClass {
  if (code === DEADLINE_EXCEEDED)
    return {
      type: 'timeout',
      connecting: /Waiting for LB pick|name resolution/.test(details) && !/remote_addr=/.test(details),
    };
  if (code === UNAVAILABLE) {
    if (/^Name resolution failed/.test(details) || /ENOTFOUND|EAI_AGAIN/.test(details))
      return { type: 'dns' };
    const last = lastError(details);
    if (/ECONNREFUSED/.test(details)) return { type: 'refused', detail: last };
    if (/ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames/.test(details))
      return { type: 'serverName', detail: last };
    const text = last.toLowerCase();
    if (UNKNOWN_CA_TEXTS.some((t) => text.includes(t)))
      return { type: 'unknownCA', detail: UNKNOWN_CA_TEXTS.find((t) => text.includes(t))! };
    // An alert *received* (ssl3_read_bytes … alert …) is the server refusing us during the handshake.
    const alert = /alert ([a-z ]+?)(?::|\s+SSL alert number)/i.exec(last);
    if (alert && /read_bytes|SSL alert number/.test(last)) {
      const name = alert[1]!
        .replace(/^(tlsv1[0-9]*|sslv3|ssl\/tls)\s+/i, '')
        .trim()
        .toLowerCase();
      return { type: 'clientRejected', alert: name };
    }
    if (/wrong version number|packet length too long|http request/i.test(last)) return { type: 'notTLS' };
    if (/certificate|ssl|tls/i.test(last)) return { type: 'tls', detail: last };
    if (/ETIMEDOUT/.test(details)) return { type: 'timeout', connecting: true };
    return { type: 'network', detail: last };
  }
  if (code === NOT_FOUND || (code === UNKNOWN && /no such file or directory/.test(details)))
    return { type: 'missing', detail: details };
  if (code === UNKNOWN && INVALID_TEXTS.some((r) => r.test(details)))
    return { type: 'invalid', detail: details };
  return { type: 'server', code, detail: details };
}

/**
 * The error a person acts on, for a failed call. `serverCert` is what the server presented,
 * when the caller could read it (it helps explain a SAN mismatch or an unknown CA).
 */
export function toMatchboxError(
  failure: FailureClass,
  ctx: CallContext,
  serverCert?: CertSummary,
): MatchboxError {
  const { endpoint } = ctx;
  const what = ctx.kind && ctx.id !== undefined ? { kind: ctx.kind, id: ctx.id } : undefined;
  switch (failure.type) {
    case 'refused':
      return new MatchboxUnreachableError(
        endpoint,
        'refused',
        'connection refused. Check that matchbox runs on that host with -rpc-address on that port, and that no firewall rejects it.',
      );
    case 'timeout':
      return new MatchboxUnreachableError(
        endpoint,
        'timeout',
        `no answer within ${Math.round(ctx.timeoutMs / 100) / 10}s${failure.connecting ? ' while connecting' : ` to ${ctx.operation}`}. ` +
          'Check the host and port, and that the server is running and not hung or behind a firewall that drops packets.',
      );
    case 'dns':
      return new MatchboxUnreachableError(endpoint, 'dns', `host name "${ctx.host}" does not resolve.`);
    case 'network':
      return new MatchboxUnreachableError(endpoint, 'network', failure.detail);
    case 'serverName':
      return new MatchboxServerNameMismatchError(endpoint, ctx.host, serverCert?.names);
    case 'unknownCA':
      return new MatchboxUnknownCAError(
        endpoint,
        failure.detail,
        serverCert?.issuer,
        ctx.configuredCA?.subject,
      );
    case 'clientRejected':
      return new MatchboxClientCertRejectedError(endpoint, failure.alert, ctx.client);
    case 'notTLS':
      return new MatchboxTLSError(
        endpoint,
        "the server does not speak TLS there. Is that Matchbox's HTTP port (-address) instead of its gRPC port (-rpc-address)?",
      );
    case 'tls':
      return new MatchboxTLSError(endpoint, failure.detail);
    case 'missing':
      // Only a read or delete names an object that may be absent; a failed write is a server fault.
      if (what && ctx.operation.startsWith('Select')) {
        const message = /No matching Profile/.test(failure.detail)
          ? `a group on Matchbox at ${endpoint} matches ${what.id}, but its profile is missing or invalid`
          : `no group on Matchbox at ${endpoint} matches ${what.id}`;
        return new MatchboxNotFoundError(endpoint, what.kind, what.id, message);
      }
      if (what && /(Get|Delete)$/.test(ctx.operation))
        return new MatchboxNotFoundError(endpoint, what.kind, what.id);
      return new MatchboxServerError(endpoint, ctx.operation, NOT_FOUND, 'not found');
    case 'invalid':
      if (what) return new MatchboxInvalidError(endpoint, what.kind, what.id, failure.detail);
      return new MatchboxServerError(endpoint, ctx.operation, UNKNOWN, failure.detail);
    case 'server':
      return new MatchboxServerError(endpoint, ctx.operation, failure.code, failure.detail);
  }
}
