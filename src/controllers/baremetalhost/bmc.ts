// One BmcDriver per host, made by the process's BmcFactory from spec.bmc and the credentials
// Secret (read from the store on every operation, so a fixed Secret is used at once).
// A driver is replaced when the host's BMC settings change and closed when the host goes.

import { type SecretLike, secretCredentialProvider } from '../../bmc/credentials.ts';
import type { BmcDriver, BmcNotice } from '../../bmc/driver.ts';
import type { BmcFactory } from '../../bmc/factory.ts';
import type { BareMetalHost } from '../../crds/baremetalhost.ts';
import { isNotFound } from '../../runtime/errors.ts';
import type { Resource } from '../../runtime/resource.ts';
import type { ResourceStore } from '../../runtime/store.ts';
import { SECRET_KIND } from './kinds.ts';

interface Entry {
  fingerprint: string;
  driver: BmcDriver;
}

export class HostBmcs {
  #factory: BmcFactory;
  #store: ResourceStore;
  #drivers = new Map<string, Entry>();
  #notices = new Map<string, BmcNotice[]>();

  constructor(factory: BmcFactory, store: ResourceStore) {
    this.#factory = factory;
    this.#store = store;
  }

  /** The credentials Secret of the host, or undefined when it does not exist. */
  async secret(host: BareMetalHost): Promise<(Resource & SecretLike) | undefined> {
    const namespace = host.metadata.namespace ?? '';
    try {
      return await this.#store.get<Resource & SecretLike>(SECRET_KIND, {
        namespace,
        name: host.spec.bmc.credentialsName,
      });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** The driver for the host's current spec.bmc. Throws BmcAddressError for an unusable address. */
  driver(host: BareMetalHost): BmcDriver {
    const key = hostKey(host);
    const { address, credentialsName, disableCertificateVerification } = host.spec.bmc;
    const fingerprint = JSON.stringify([address, credentialsName, disableCertificateVerification === true]);
    const cached = this.#drivers.get(key);
    if (cached?.fingerprint === fingerprint) return cached.driver;
    if (cached) void cached.driver.close().catch(() => {});
    const namespace = host.metadata.namespace ?? '';
    const driver = this.#factory.create({
      address,
      credentials: secretCredentialProvider(
        () => this.secret(host),
        address,
        `Secret ${namespace}/${credentialsName} (spec.bmc.credentialsName)`,
      ),
      disableCertificateVerification: disableCertificateVerification === true,
      addressField: 'spec.bmc.address',
      onNotice: (notice) => {
        const list = this.#notices.get(key) ?? [];
        if (list.length < 20) list.push(notice);
        this.#notices.set(key, list);
      },
    });
    this.#drivers.set(key, { fingerprint, driver });
    return driver;
  }

  /** What the host's driver said since the last call (Basic fallback, forced graceful, Once kept). */
  takeNotices(key: string): BmcNotice[] {
    const list = this.#notices.get(key) ?? [];
    this.#notices.delete(key);
    return list;
  }

  /** Closes the host's driver (logs out of a Redfish session). */
  async forget(key: string): Promise<void> {
    const entry = this.#drivers.get(key);
    this.#drivers.delete(key);
    this.#notices.delete(key);
    await entry?.driver.close().catch(() => {});
  }

  async closeAll(): Promise<void> {
    const entries = [...this.#drivers.values()];
    this.#drivers.clear();
    await Promise.allSettled(entries.map((e) => e.driver.close()));
  }
}

export function hostKey(host: { metadata: { namespace?: string; name?: string } }): string {
  return `${host.metadata.namespace ?? ''}/${host.metadata.name ?? ''}`;
}
