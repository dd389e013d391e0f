/**
 * The etcd3 client as the etcd store and elector use it: TLS and username/password, every unary
 * call bounded by a deadline and marked "requires a leader" (a member without quorum answers at
 * once instead of hanging), and one retry loop that moves to another member on transport errors
 * and turns exhaustion into an EtcdUnavailableError that says whether quorum or connectivity is
 * missing. The library's own retry is off: a write retried behind our back could commit twice.
 */
import { type CallOptions, credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';
import { Etcd3, type IOptions } from 'etcd3';

export interface EtcdConnectionOptions {
  /** `host:port` of each member (a scheme prefix is accepted and ignored). */
  hosts: string[];
  /** PEM; TLS is used when `ca` is given. `cert`/`key` for client-certificate authentication. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  /** Deadline of one attempt of a unary call (default 4 s). */
  attemptTimeoutMs?: number;
  /** Longest an operation keeps retrying on other members before failing (default 15 s). */
  requestTimeoutMs?: number;
}

export type EtcdUnavailableReason = 'NoQuorum' | 'Unreachable' | 'Timeout';

/**
 * etcd could not serve a request in time: with `NoQuorum` the members answer but fewer than a
 * majority are up, so nothing can be written until one returns; with `Unreachable` no member
 * could be contacted. HTTP-like code 503. The write may be retried safely (it was not committed).
 */
export class EtcdUnavailableError extends Error {
  readonly reason: EtcdUnavailableReason;
  readonly code = 503;
  constructor(reason: EtcdUnavailableReason, what: string, hosts: string[], cause?: unknown) {
    const why = {
      NoQuorum:
        'etcd has no quorum (no leader): fewer than a majority of its members are running; the change was not committed',
      Unreachable: `no etcd member answered (tried ${hosts.join(', ')})`,
      Timeout: 'etcd did not answer in time (a majority of its members may be down or overloaded)',
    }[reason];
    super(`${what}: ${why}${cause instanceof Error ? ` (last error: ${cause.message})` : ''}`);
    this.name = 'EtcdUnavailableError';
    this.reason = reason;
  }
}

/** Credentials or permissions were refused: retrying will not help. */
export class EtcdAccessError extends Error {
  constructor(what: string, cause: Error) {
    super(`${what}: etcd refused access: ${cause.message}`);
    this.name = 'EtcdAccessError';
  }
}

/** Asks the member to fail fast ("etcdserver: no leader") when it has no leader (clientv3.WithRequireLeader). */
const requireLeader = grpcCredentials.createFromMetadataGenerator((_params, callback) => {
  const metadata = new Metadata();
  metadata.set('hasleader', 'true');
  callback(null, metadata);
});

/** A cockatiel-shaped policy that just runs the call: etcd3's default global policy retries writes blindly. */
const noRetry = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose() {} }),
  onFailure: () => ({ dispose() {} }),
  execute: <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
};

export interface EtcdConnection {
  client: Etcd3;
  hosts: string[];
  /**
   * Runs `fn` (one attempt, to be given `options` as its call options: they bound it by the time
   * left) until it succeeds, fails with a non-transport error, or the request timeout passes.
   * `onRetry` runs before each retry (so a write can note its outcome is unknown).
   */
  call<T>(
    what: string,
    fn: (options: CallOptions) => Promise<T>,
    onRetry?: (error: unknown) => void,
  ): Promise<T>;
  close(): void;
}

export function connectEtcd(options: EtcdConnectionOptions): EtcdConnection {
  if (options.hosts.length === 0) throw new Error('etcd: at least one endpoint is required');
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 4000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
  const hosts = options.hosts.map((h) => h.replace(/^[a-z+]+:\/\//, ''));
  const clientOptions: IOptions = {
    hosts,
    dialTimeout: attemptTimeoutMs,
    defaultCallOptions: (context) =>
      context.isStream
        ? { credentials: requireLeader }
        : { deadline: Date.now() + attemptTimeoutMs, credentials: requireLeader },
    faultHandling: { global: noRetry as unknown as NonNullable<IOptions['faultHandling']>['global'] },
    // Lists of thousands of objects are paged, but one page of large objects can pass 4 MiB.
    grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  };
  if (options.tls) {
    clientOptions.credentials = {
      rootCertificate: options.tls.ca,
      ...(options.tls.key ? { privateKey: options.tls.key } : {}),
      ...(options.tls.cert ? { certChain: options.tls.cert } : {}),
    };
  }
  if (options.auth) clientOptions.auth = { ...options.auth };
  const client = new Etcd3(clientOptions);

  const call = async <T>(
    what: string,
    fn: (options: CallOptions) => Promise<T>,
    onRetry?: (e: unknown) => void,
  ): Promise<T> => {
    const deadline = Date.now() + requestTimeoutMs;
    let noLeader = false;
    let answered = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn({
          deadline: Math.min(Date.now() + attemptTimeoutMs, Math.max(deadline, Date.now() + 100)),
          credentials: requireLeader,
        });
      } catch (error) {
        const kind = classify(error);
        if (kind === 'access') throw new EtcdAccessError(what, error as Error);
        if (kind === 'fatal') throw error;
        if (kind === 'no-leader') noLeader = true;
        if (kind !== 'unreachable') answered = true;
        if (Date.now() + backoff(attempt) >= deadline) {
          const reason: EtcdUnavailableReason = noLeader ? 'NoQuorum' : answered ? 'Timeout' : 'Unreachable';
          throw new EtcdUnavailableError(reason, what, hosts, error);
        }
        onRetry?.(error);
        await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
      }
    }
  };

  return { client, hosts, call, close: () => client.close() };
}

function backoff(attempt: number): number {
  return Math.min(1000, 50 * 2 ** (attempt - 1));
}

type ErrorKind = 'no-leader' | 'unreachable' | 'transient' | 'access' | 'fatal';

/** What a failed attempt means for retrying; grpc and etcd errors arrive as typed etcd3 classes. */
export function classify(error: unknown): ErrorKind {
  if (!(error instanceof Error)) return 'fatal';
  const name = error.constructor.name;
  const message = error.message;
  if (/no leader/.test(message)) return 'no-leader';
  if (
    name === 'EtcdAuthenticationFailedError' ||
    name === 'EtcdPermissionDeniedError' ||
    name === 'GRPCUnauthenticatedError' ||
    /authentication failed|permission denied|user name is empty/.test(message)
  )
    return 'access';
  if (
    /ECONNREFUSED|No connection established|connect EHOSTUNREACH|ENOTFOUND|circuit breaker is open/.test(
      message,
    ) ||
    name === 'BrokenCircuitError'
  )
    return 'unreachable';
  if (
    name === 'GRPCUnavailableError' ||
    name === 'GRPCDeadlineExceededError' ||
    name === 'GRPCCancelledError' ||
    name === 'GRPCResourceExhastedError' ||
    name === 'GRPCAbortedError' ||
    name === 'GRPCInternalError' ||
    /deadline exceeded|request timed out|leader changed|too many requests|RST_STREAM|ECONNRESET|socket hang up/i.test(
      message,
    )
  )
    return 'transient';
  return 'fatal';
}
