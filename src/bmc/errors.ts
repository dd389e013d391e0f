// Typed BMC errors. Each names the BMC (its address, never credentials) and says what a person can do.
// Messages are built from fixed text plus data the caller has already redacted: a password or session
// token must never reach one (see redact.ts).

export type BmcErrorCode =
  | 'BmcAuth'
  | 'BmcUnreachable'
  | 'BmcTimeout'
  | 'BmcTls'
  | 'BmcProtocol'
  | 'BmcNotFound'
  | 'BmcUnsupported'
  | 'BmcAddress'
  | 'BmcCredentials'
  | 'BmcTask'
  | 'BmcCircuitOpen';

export abstract class BmcError extends Error {
  abstract readonly code: BmcErrorCode;
  /** The BMC address as the user wrote it, with any userinfo removed. */
  readonly bmc: string;
  /**
   * Whether the failure says something about the BMC's health (unreachable, hanging, answering garbage),
   * so the circuit breaker counts it. Caller mistakes (bad address, unsupported option) do not count.
   */
  readonly countsAgainstBmc: boolean = true;

  constructor(bmc: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.bmc = bmc;
    this.name = new.target.name;
  }
}

/** The BMC refused the credentials (or the account lacks the privilege for the operation). */
export class BmcAuthError extends BmcError {
  readonly code = 'BmcAuth';
  constructor(bmc: string, detail: string, options?: { cause?: unknown; username?: string }) {
    const who = options?.username ? ` as user "${options.username}"` : '';
    super(
      bmc,
      `BMC ${bmc} rejected the credentials${who}: ${detail}; check the username and password in the credentials Secret`,
      options,
    );
  }
}

export class BmcUnreachableError extends BmcError {
  readonly code = 'BmcUnreachable';
  constructor(bmc: string, detail: string, options?: { cause?: unknown }) {
    super(bmc, `BMC ${bmc} is unreachable: ${detail}`, options);
  }
}

export class BmcTimeoutError extends BmcError {
  readonly code = 'BmcTimeout';
  readonly timeoutMs: number;
  constructor(bmc: string, what: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(bmc, `BMC ${bmc} did not answer ${what} within ${timeoutMs} ms`, options);
    this.timeoutMs = timeoutMs;
  }
}

/** TLS verification failed: the fix is a CA bundle, or an explicit disableCertificateVerification. */
export class BmcTlsError extends BmcError {
  readonly code = 'BmcTls';
  constructor(bmc: string, detail: string, options?: { cause?: unknown }) {
    super(
      bmc,
      `BMC ${bmc} presented a certificate that could not be verified (${detail}); provide the CA that signed it, or set disableCertificateVerification if you accept the risk`,
      options,
    );
  }
}

/** The BMC answered, but not with something the protocol allows (bad JSON, HTML, wrong shape, HTTP error). */
export class BmcProtocolError extends BmcError {
  readonly code = 'BmcProtocol';
  readonly status: number | undefined;
  constructor(bmc: string, detail: string, options?: { cause?: unknown; status?: number }) {
    super(bmc, `BMC ${bmc} gave an unusable answer: ${detail}`, options);
    this.status = options?.status;
  }
}

/** A resource the address points at (usually the System) does not exist on this BMC. */
export class BmcNotFoundError extends BmcError {
  readonly code = 'BmcNotFound';
  override readonly countsAgainstBmc = false;
  constructor(bmc: string, detail: string, options?: { cause?: unknown }) {
    super(bmc, `BMC ${bmc}: ${detail}`, options);
  }
}

/** The BMC (or this driver) cannot do what was asked, e.g. a reset type it does not advertise. */
export class BmcUnsupportedError extends BmcError {
  readonly code = 'BmcUnsupported';
  override readonly countsAgainstBmc = false;
  constructor(bmc: string, detail: string, options?: { cause?: unknown }) {
    super(bmc, `BMC ${bmc} does not support ${detail}`, options);
  }
}

/** The address itself is wrong: bad scheme, missing host, ambiguous system. */
export class BmcAddressError extends BmcError {
  readonly code = 'BmcAddress';
  override readonly countsAgainstBmc = false;
  readonly field: string;
  constructor(bmc: string, detail: string, options?: { cause?: unknown; field?: string }) {
    super(bmc, `${options?.field ?? 'bmc.address'} "${bmc}": ${detail}`, options);
    this.field = options?.field ?? 'bmc.address';
  }
}

/** The credentials Secret is missing a key or is not decodable. */
export class BmcCredentialsError extends BmcError {
  readonly code = 'BmcCredentials';
  override readonly countsAgainstBmc = false;
  constructor(bmc: string, detail: string, options?: { cause?: unknown }) {
    super(bmc, `credentials for BMC ${bmc}: ${detail}`, options);
  }
}

/** A Redfish task (202 Accepted + task monitor) ended in failure. */
export class BmcTaskError extends BmcError {
  readonly code = 'BmcTask';
  constructor(bmc: string, detail: string, options?: { cause?: unknown }) {
    super(bmc, `BMC ${bmc} task failed: ${detail}`, options);
  }
}

/** The circuit breaker for this BMC is open: recent operations failed, so this one was not tried. */
export class CircuitOpenError extends BmcError {
  readonly code = 'BmcCircuitOpen';
  override readonly countsAgainstBmc = false;
  readonly retryAfterMs: number;
  constructor(bmc: string, failures: number, retryAfterMs: number, lastError?: string) {
    const last = lastError ? `; last error: ${lastError}` : '';
    super(
      bmc,
      `BMC ${bmc} failed ${failures} operations in a row; not trying again for ${Math.ceil(retryAfterMs / 1000)} s${last}`,
    );
    this.retryAfterMs = retryAfterMs;
  }
}

export function isBmcError(error: unknown): error is BmcError {
  return error instanceof BmcError;
}
