// Address + credentials → a BmcDriver for the scheme, wrapped so every operation goes through the
// per-BMC limiter and circuit breaker. One factory per process: it owns the protection state and the
// IPMI cipher-suite cache that drivers share.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type BmcAddress, parseBmcAddress } from './address.ts';
import type { CredentialProvider } from './credentials.ts';
import type { BmcDriver, BmcNoticeSink } from './driver.ts';
import { type CipherCache, IpmiDriver, type IpmiDriverOptions } from './ipmi/driver.ts';
import { BmcProtection, type ProtectionOptions } from './protection.ts';
import { RedfishDriver, type RedfishDriverOptions } from './redfish/driver.ts';

export interface BmcTarget {
  /** e.g. redfish://10.0.10.11/redfish/v1/Systems/1, ipmi://10.0.10.12 */
  address: string;
  credentials: CredentialProvider;
  /** Redfish over HTTPS: accept any certificate (the host's manifest must say so explicitly). */
  disableCertificateVerification?: boolean;
  /** Redfish over HTTPS: PEM CA bundle that signed the BMC's certificate. */
  caBundle?: string;
  /** Where the address was written, for error hints (default bmc.address; the CLI: --address). */
  addressField?: string;
  /** Things the operator should see once (Basic fallback, a forced graceful request, a Once kept Continuous). */
  onNotice?: BmcNoticeSink;
}

type RedfishTuning = Omit<
  RedfishDriverOptions,
  'address' | 'credentials' | 'tls' | 'logger' | 'onNotice' | 'addressField'
>;
type IpmiTuning = Omit<IpmiDriverOptions, 'address' | 'credentials' | 'cipherCache' | 'logger'>;

export interface BmcFactoryOptions {
  /** Shared limiter/breaker; created from `protection` options when absent. */
  protection?: BmcProtection | ProtectionOptions;
  registry?: Registry;
  logger?: Logger;
  redfish?: RedfishTuning;
  ipmi?: IpmiTuning;
}

export interface BmcFactory {
  /** Throws BmcAddressError for an unusable address. */
  create(target: BmcTarget): BmcDriver;
  readonly protection: BmcProtection;
  /** Closes every driver not closed yet (Redfish sessions are logged out): call on shutdown. */
  closeAll(): Promise<void>;
}

/** A BmcDriver whose operations run under the factory's protection. */
class ProtectedDriver implements BmcDriver {
  readonly protocol: 'redfish' | 'ipmi';
  readonly address: string;
  private readonly inner: BmcDriver;
  private readonly bmc: { key: string; display: string; protocol: 'redfish' | 'ipmi' };
  private readonly protection: BmcProtection;

  private readonly onClose: () => Promise<void>;

  constructor(
    inner: BmcDriver,
    address: BmcAddress,
    protection: BmcProtection,
    onClose: () => Promise<void>,
  ) {
    this.inner = inner;
    this.onClose = onClose;
    this.protocol = inner.protocol;
    this.address = inner.address;
    this.bmc = { key: address.key, display: address.display, protocol: address.protocol };
    this.protection = protection;
  }

  /** host:port of the BMC, the key of its limiter and circuit. */
  get key(): string {
    return this.bmc.key;
  }

  private run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return this.protection.run(this.bmc, operation, fn);
  }

  powerState() {
    return this.run('powerState', () => this.inner.powerState());
  }
  powerOn() {
    return this.run('powerOn', () => this.inner.powerOn());
  }
  powerOff(...args: Parameters<BmcDriver['powerOff']>) {
    return this.run('powerOff', () => this.inner.powerOff(...args));
  }
  reboot(...args: Parameters<BmcDriver['reboot']>) {
    return this.run('reboot', () => this.inner.reboot(...args));
  }
  setBootOnce(...args: Parameters<BmcDriver['setBootOnce']>) {
    return this.run('setBootOnce', () => this.inner.setBootOnce(...args));
  }
  setBootOverride(...args: Parameters<BmcDriver['setBootOverride']>) {
    return this.run('setBootOverride', () => this.inner.setBootOverride(...args));
  }
  bootOverride() {
    return this.run('bootOverride', () => this.inner.bootOverride());
  }
  clearBootOverride() {
    return this.run('clearBootOverride', () => this.inner.clearBootOverride());
  }
  inventory() {
    return this.run('inventory', () => this.inner.inventory());
  }
  validateCredentials() {
    return this.run('validateCredentials', () => this.inner.validateCredentials());
  }
  async close() {
    // Logout is not limited: it must not wait behind a queue or be refused by an open circuit.
    try {
      await this.inner.close();
    } finally {
      await this.onClose();
    }
  }
}

export function createBmcFactory(options: BmcFactoryOptions = {}): BmcFactory {
  const protection =
    options.protection instanceof BmcProtection
      ? options.protection
      : new BmcProtection({
          ...(options.protection ?? {}),
          ...(options.registry ? { registry: options.registry } : {}),
          ...(options.logger ? { logger: options.logger } : {}),
        });
  const cipherCache: CipherCache = new Map();
  const open = new Set<ProtectedDriver>();
  return {
    protection,
    async closeAll() {
      const drivers = [...open];
      open.clear();
      await Promise.allSettled(drivers.map((d) => d.close()));
    },
    create(target) {
      const address = parseBmcAddress(target.address, target.addressField);
      let inner: BmcDriver;
      if (address.protocol === 'redfish') {
        inner = new RedfishDriver({
          ...options.redfish,
          address,
          credentials: target.credentials,
          tls: {
            ...(target.caBundle ? { ca: target.caBundle } : {}),
            disableCertificateVerification: target.disableCertificateVerification === true,
          },
          ...(options.logger ? { logger: options.logger } : {}),
          ...(target.addressField ? { addressField: target.addressField } : {}),
          ...(target.onNotice ? { onNotice: target.onNotice } : {}),
        });
      } else {
        inner = new IpmiDriver({
          ...options.ipmi,
          address,
          credentials: target.credentials,
          cipherCache,
          ...(options.logger ? { logger: options.logger } : {}),
        });
      }
      const driver = new ProtectedDriver(inner, address, protection, async () => {
        open.delete(driver);
        // The last driver of a BMC gone: nothing kept for it any more.
        if ([...open].some((d) => d.key === address.key)) return;
        cipherCache.delete(address.key);
        await protection.forget(address.key);
      });
      open.add(driver);
      return driver;
    },
  };
}
