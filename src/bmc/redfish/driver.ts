// BmcDriver over Redfish: one ComputerSystem, found from the address (or the only System on the service).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RedfishAddress } from '../address.ts';
import type { CredentialProvider } from '../credentials.ts';
import {
  type BmcDriver,
  type BmcNoticeSink,
  type BootDevice,
  type BootOnceOptions,
  type BootOnceResult,
  type BootOverride,
  type BootOverrideOptions,
  DEFAULT_GRACEFUL_TIMEOUT_MS,
  type DiskInventory,
  type Inventory,
  type NicInventory,
  type PowerOffOptions,
  type PowerState,
  type RebootOptions,
} from '../driver.ts';
import {
  BmcAddressError,
  BmcError,
  BmcNotFoundError,
  BmcProtocolError,
  BmcTimeoutError,
  BmcUnsupportedError,
} from '../errors.ts';
import { RedfishClient, type RedfishResponse, type RedfishTlsOptions } from './client.ts';
import {
  decideBootMode,
  detectVendor,
  quirksFor,
  quirksForDetected,
  type RedfishQuirks,
  type VendorFamily,
  vendorScheme,
} from './quirks.ts';
import { chooseResetType, type ResetIntent } from './reset-types.ts';
import {
  actionInfo,
  type Collection,
  type ComputerSystem,
  collection,
  computerSystem,
  drive,
  ethernetInterface,
  memoryModule,
  processor,
  simpleStorage,
  storage,
} from './schemas.ts';

export interface RedfishDriverOptions {
  address: RedfishAddress;
  credentials: CredentialProvider;
  tls?: RedfishTlsOptions;
  logger?: Logger;
  /** Per HTTP exchange (default 30 s). */
  requestTimeoutMs?: number;
  /** Extra attempts on 5xx/429/refused connections (default 3). */
  retries?: number;
  retryBaseMs?: number;
  /** How often power state is re-read while waiting for a change (default 2 s). */
  pollIntervalMs?: number;
  /** Longest wait for a 202 task monitor (default 5 min). */
  taskTimeoutMs?: number;
  /** How long a forced power-off may take to show before power-on is sent in a fallback reboot (default 60 s). */
  powerChangeTimeoutMs?: number;
  auth?: 'auto' | 'basic';
  /** Where the address came from, for hints (default bmc.address; the CLI says --address). */
  addressField?: string;
  /** Things an operator should see once: Basic fallback, a forced graceful request, a Once kept Continuous. */
  onNotice?: BmcNoticeSink;
}

const MAX_COLLECTION_PAGES = 20;

function mapPowerState(value: string | null | undefined): PowerState {
  switch (value) {
    case 'On':
      return 'on';
    case 'Off':
      return 'off';
    case 'PoweringOn':
      return 'poweringOn';
    case 'PoweringOff':
      return 'poweringOff';
    default:
      return 'unknown';
  }
}

function mapLink(value: string | null | undefined): NicInventory['link'] {
  if (value === 'LinkUp') return 'up';
  if (value === 'LinkDown' || value === 'NoLink') return 'down';
  return 'unknown';
}

function clean(value: string | null | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** GiB as a person reads it: iDRAC reports e.g. 476.837376 for 512 GB; two decimals at most. */
export function roundGiB(value: number): number {
  const whole = Math.round(value);
  return Math.abs(value - whole) < 0.005 ? whole : Math.round(value * 100) / 100;
}

function deviceOf(target: string | undefined): BootDevice | undefined {
  if (target === 'Pxe') return 'pxe';
  if (target === 'Hdd') return 'disk';
  return undefined;
}

function readOverride(boot: ComputerSystem['Boot']): BootOverride {
  const enabled = clean(boot?.BootSourceOverrideEnabled);
  const target = clean(boot?.BootSourceOverrideTarget);
  const mode = clean(boot?.BootSourceOverrideMode);
  const device = deviceOf(target);
  return {
    enabled: enabled === 'Once' || enabled === 'Continuous' || enabled === 'Disabled' ? enabled : 'unknown',
    ...(device ? { device } : {}),
    ...(target ? { target } : {}),
    ...(mode === 'UEFI' ? { mode: 'UEFI' as const } : mode === 'Legacy' ? { mode: 'legacy' as const } : {}),
  };
}

function short(error: unknown): string {
  if (error instanceof BmcProtocolError && error.status !== undefined) return `HTTP ${error.status}`;
  if (error instanceof BmcNotFoundError) return 'HTTP 404';
  return error instanceof BmcError ? error.code : error instanceof Error ? error.message : String(error);
}

export class RedfishDriver implements BmcDriver {
  readonly protocol = 'redfish' as const;
  readonly address: string;
  private readonly target: RedfishAddress;
  private readonly client: RedfishClient;
  private readonly schemeQuirks: RedfishQuirks;
  private detected: { vendor: VendorFamily; quirks: RedfishQuirks } | undefined;
  private readonly addressField: string;
  private readonly onNotice: BmcNoticeSink | undefined;
  private readonly logger: Logger | undefined;
  private readonly pollIntervalMs: number;
  private readonly taskTimeoutMs: number;
  private readonly powerChangeTimeoutMs: number;
  private systemPath: string | undefined;
  private resetAllowed: { target: string; allowed: string[] | undefined } | undefined;

  constructor(options: RedfishDriverOptions) {
    this.target = options.address;
    this.address = options.address.display;
    this.logger = options.logger?.child({ bmc: this.address });
    this.schemeQuirks = quirksFor(options.address.vendor);
    this.addressField = options.addressField ?? 'bmc.address';
    this.onNotice = options.onNotice;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.taskTimeoutMs = options.taskTimeoutMs ?? 300_000;
    this.powerChangeTimeoutMs = options.powerChangeTimeoutMs ?? 60_000;
    this.systemPath = options.address.systemPath;
    this.client = new RedfishClient({
      address: options.address,
      credentials: options.credentials,
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
      ...(options.retries !== undefined ? { retries: options.retries } : {}),
      ...(options.retryBaseMs !== undefined ? { retryBaseMs: options.retryBaseMs } : {}),
      ...(options.auth ? { auth: options.auth } : {}),
      ...(this.logger ? { logger: this.logger } : {}),
      ...(options.onNotice ? { onNotice: options.onNotice } : {}),
    });
  }

  /**
   * The quirks in force: the scheme's when it names a vendor, else the vendor the service root names
   * (a generic redfish:// address on an iLO gets iLO quirks, and the operator is told once).
   */
  async vendor(): Promise<{ vendor: VendorFamily; quirks: RedfishQuirks }> {
    if (this.detected) return this.detected;
    const vendor = detectVendor(await this.client.serviceRoot());
    let quirks = this.schemeQuirks;
    if (this.target.vendor === 'generic') {
      quirks = quirksForDetected(vendor);
      const scheme = vendorScheme[vendor];
      if (quirks.name !== 'generic') {
        this.logger?.info({ vendor, quirks: quirks.name }, 'vendor detected from the service root');
        if (scheme) {
          this.onNotice?.({
            code: 'VendorDetected',
            message: `the service root names ${vendor}; using ${quirks.name} quirks (write ${this.schemeFor(scheme)} to say so)`,
          });
        }
      }
    }
    this.detected = { vendor, quirks };
    return this.detected;
  }

  /** How the client authenticates ('session' or 'basic' once it has talked to the BMC). */
  get authMode(): string {
    return this.client.authMode;
  }

  async powerState(): Promise<PowerState> {
    await this.client.refreshCredentials();
    return mapPowerState((await this.system()).data.PowerState);
  }

  async powerOn(): Promise<void> {
    await this.client.refreshCredentials();
    const { data } = await this.system();
    const state = mapPowerState(data.PowerState);
    // Many BMCs answer 400/409 to "On" when already on; powering on is idempotent here.
    if (state === 'on' || state === 'poweringOn') return;
    await this.reset('on', data);
  }

  async powerOff(options: PowerOffOptions = {}): Promise<void> {
    await this.client.refreshCredentials();
    const { data } = await this.system();
    const state = mapPowerState(data.PowerState);
    if (state === 'off') return;
    if (options.graceful) {
      const timeoutMs = options.timeoutMs ?? DEFAULT_GRACEFUL_TIMEOUT_MS;
      if (!(await this.offers('gracefulOff', data))) {
        await this.gracefulUnavailable(data, 'power off', options.allowForced === true);
      } else if (await this.tryReset('gracefulOff', data)) {
        if (await this.waitForPower('off', timeoutMs)) return;
        this.logger?.warn({ timeoutMs }, 'graceful shutdown did not finish in time; forcing power off');
        this.onNotice?.({
          code: 'GracefulTimedOut',
          message: `the OS did not shut down within ${Math.round(timeoutMs / 1000)} s; forcing power off`,
        });
      }
    }
    await this.reset('forceOff', data);
  }

  async reboot(options: RebootOptions = {}): Promise<void> {
    await this.client.refreshCredentials();
    const { data } = await this.system();
    const state = mapPowerState(data.PowerState);
    if (state === 'off' || state === 'poweringOff') {
      if (state === 'poweringOff') await this.waitForPower('off', this.powerChangeTimeoutMs);
      await this.reset('on', data);
      return;
    }
    if (options.mode === 'soft') {
      if (await this.tryReset('gracefulRestart', data)) return;
      // No GracefulRestart (iDRAC 8, iLO 5): shut down gracefully, force after the timeout, power on.
      // Neither graceful type (Supermicro): refused unless a forced restart is allowed.
      if (!(await this.offers('gracefulOff', data))) {
        await this.gracefulUnavailable(data, 'restart', options.allowForced === true);
        if (await this.tryReset('forceRestart', data)) return;
        await this.powerOffThenOn(data, this.powerChangeTimeoutMs, false);
        return;
      }
      await this.powerOffThenOn(data, options.timeoutMs ?? DEFAULT_GRACEFUL_TIMEOUT_MS, true);
      return;
    }
    if (await this.tryReset('forceRestart', data)) return;
    await this.powerOffThenOn(data, this.powerChangeTimeoutMs, false);
  }

  async setBootOnce(options: BootOnceOptions): Promise<BootOnceResult> {
    return this.setBootOverride({ ...options, enabled: 'Once' });
  }

  async setBootOverride(options: BootOverrideOptions): Promise<BootOnceResult> {
    await this.client.refreshCredentials();
    const target = options.device === 'pxe' ? 'Pxe' : 'Hdd';
    const system = await this.system();
    const boot = system.data.Boot;
    if (!boot)
      throw new BmcUnsupportedError(this.address, 'boot source override (the System has no Boot property)');
    const targets = boot['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (targets && targets.length > 0 && !targets.includes(target)) {
      throw new BmcUnsupportedError(this.address, `boot target ${target} (it offers ${targets.join(', ')})`);
    }
    const { vendor, quirks } = await this.vendor();
    const decision = decideBootMode(
      quirks,
      options.mode,
      clean(boot.BootSourceOverrideMode),
      boot['BootSourceOverrideMode@Redfish.AllowableValues'] ?? undefined,
    );
    if ('refuse' in decision) throw new BmcUnsupportedError(this.address, decision.refuse);
    if ('unavailable' in decision) {
      this.onNotice?.({ code: 'BootModeUnavailable', message: decision.unavailable });
    }
    const sendMode = 'send' in decision ? decision.send : undefined;
    const patch = {
      BootSourceOverrideEnabled: options.enabled,
      BootSourceOverrideTarget: target,
      ...(sendMode ? { BootSourceOverrideMode: sendMode } : {}),
    };
    try {
      await this.patchSystem({ Boot: patch }, system);
    } catch (error) {
      throw this.withSchemeHint(error, vendor, sendMode !== undefined);
    }
    const readBack = readOverride((await this.system()).data.Boot);
    const persistent = options.enabled === 'Once' && readBack.enabled === 'Continuous';
    const honoured = readBack.target === target && readBack.enabled !== 'Disabled';
    const asked = `${options.enabled} ${target}`;
    if (!honoured) {
      this.onNotice?.({
        code: 'BootOverrideNotHonoured',
        message: `asked for boot override ${asked}; the BMC reads back ${readBack.enabled} ${readBack.target ?? '(no target)'}`,
      });
    } else if (persistent) {
      this.onNotice?.({
        code: 'BootOverridePersistent',
        message: `asked for boot override Once ${target}; the BMC reads back Continuous, so every boot goes to ${target} until it is changed`,
      });
    }
    this.logger?.debug({ target, mode: sendMode, readBack }, 'boot override set');
    return {
      requested: {
        device: options.device,
        enabled: options.enabled,
        ...(options.mode ? { mode: options.mode } : {}),
      },
      readBack,
      persistent,
      honoured,
    };
  }

  async bootOverride(): Promise<BootOverride> {
    await this.client.refreshCredentials();
    return readOverride((await this.system()).data.Boot);
  }

  async clearBootOverride(): Promise<BootOverride> {
    await this.client.refreshCredentials();
    const system = await this.system();
    if (!system.data.Boot)
      throw new BmcUnsupportedError(this.address, 'boot source override (the System has no Boot property)');
    if (clean(system.data.Boot.BootSourceOverrideEnabled) !== 'Disabled') {
      const { vendor, quirks } = await this.vendor();
      const mode = decideBootMode(
        quirks,
        undefined,
        clean(system.data.Boot.BootSourceOverrideMode),
        undefined,
      );
      const sendMode = 'send' in mode ? mode.send : undefined;
      try {
        await this.patchSystem(
          {
            Boot: {
              BootSourceOverrideEnabled: 'Disabled',
              ...(sendMode ? { BootSourceOverrideMode: sendMode } : {}),
            },
          },
          system,
        );
      } catch (error) {
        throw this.withSchemeHint(error, vendor, sendMode !== undefined);
      }
    }
    return readOverride((await this.system()).data.Boot);
  }

  /** This address under a vendor scheme, transport kept (redfish+http://h:p/... → idrac-redfish+http://h:p/...). */
  private schemeFor(vendorScheme: string): string {
    const transport = /\+https?$/.exec(this.target.scheme)?.[0] ?? '';
    return `${vendorScheme}${transport}://${this.target.display.replace(/^[^:]+:\/\//, '')}`;
  }

  /** A 400 on a generic address of a vendor with its own scheme names the scheme to use. */
  private withSchemeHint(error: unknown, vendor: VendorFamily, sentMode: boolean): unknown {
    const scheme = vendorScheme[vendor];
    if (
      !(error instanceof BmcProtocolError) ||
      error.status !== 400 ||
      this.target.vendor !== 'generic' ||
      !scheme
    )
      return error;
    return new BmcProtocolError(
      this.address,
      `${error.message.replace(/^BMC \S+ gave an unusable answer: /, '')}; the service root names ${vendor}${sentMode ? ' and the BMC refused BootSourceOverrideMode' : ''}: use ${this.schemeFor(scheme)}`,
      { status: 400, cause: error },
    );
  }

  async inventory(): Promise<Inventory> {
    await this.client.refreshCredentials();
    const { data } = await this.system();
    const incomplete: string[] = [];
    const optional = async <T>(part: string, fn: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (error) {
        // Credentials, timeouts and an unreachable BMC fail the whole inventory; a missing part does not.
        if (
          error instanceof BmcError &&
          !['BmcProtocol', 'BmcNotFound', 'BmcUnsupported'].includes(error.code)
        ) {
          throw error;
        }
        incomplete.push(`${part}: ${short(error)}`);
        return undefined;
      }
    };

    /** Reads each member on its own: a member that 404s (hot-removed drive, disabled port) is named, not fatal. */
    const each = async <T>(
      part: string,
      paths: string[],
      read: (path: string) => Promise<T>,
    ): Promise<T[]> => {
      const out: T[] = [];
      for (const path of paths) {
        const got = await optional(`${part} ${path}`, () => read(path));
        if (got !== undefined) out.push(got);
      }
      return out;
    };

    const nics: NicInventory[] = [];
    const nicsLink = data.EthernetInterfaces?.['@odata.id'];
    if (nicsLink) {
      const paths = await optional(`nics ${nicsLink}`, () => this.members(nicsLink));
      for (const nic of await each('nic', paths ?? [], async (path) => {
        return (await this.client.get(path, ethernetInterface, { retries: 1 })).data;
      })) {
        const mac = clean(nic.MACAddress) ?? clean(nic.PermanentMACAddress);
        if (!mac) continue;
        const name = clean(nic.Name) ?? clean(nic.Id);
        nics.push({
          ...(name ? { name } : {}),
          mac: mac.toLowerCase().replaceAll('-', ':'),
          link: mapLink(nic.LinkStatus),
          ...(typeof nic.SpeedMbps === 'number' ? { speedMbps: nic.SpeedMbps } : {}),
        });
      }
    } else {
      incomplete.push('nics: not advertised');
    }

    const disks: DiskInventory[] = [];
    const storageLink = data.Storage?.['@odata.id'];
    const simpleLink = data.SimpleStorage?.['@odata.id'];
    if (storageLink) {
      const controllers = await optional(`storage ${storageLink}`, () => this.members(storageLink));
      for (const controller of await each('storage', controllers ?? [], async (path) => {
        return (await this.client.get(path, storage, { retries: 1 })).data;
      })) {
        const drives = (controller.Drives ?? []).map((l) => l['@odata.id']);
        for (const d of await each('disk', drives, async (path) => {
          return (await this.client.get(path, drive, { retries: 1 })).data;
        })) {
          disks.push(this.disk(d.Name, d.CapacityBytes, d.Model, d.SerialNumber));
        }
      }
    }
    // SimpleStorage when Storage is absent or gave nothing (some BMCs list drives only there).
    if (simpleLink && disks.length === 0) {
      const controllers = await optional(`simpleStorage ${simpleLink}`, () => this.members(simpleLink));
      for (const controller of await each('simpleStorage', controllers ?? [], async (path) => {
        return (await this.client.get(path, simpleStorage, { retries: 1 })).data;
      })) {
        for (const d of controller.Devices ?? [])
          disks.push(this.disk(d.Name, d.CapacityBytes, d.Model, undefined));
      }
    }
    if (!storageLink && !simpleLink) incomplete.push('disks: not advertised');

    // CPUs: the summary when it has them, else the Processors whose ProcessorType is CPU (a GPU or
    // FPGA is a Processor too; an entry without a type is taken as a CPU, as older BMCs omit it).
    let cpuModel = clean(data.ProcessorSummary?.Model);
    let cpuCount = data.ProcessorSummary?.Count ?? undefined;
    const processorsLink = data.Processors?.['@odata.id'];
    if ((!cpuModel || cpuCount === undefined) && processorsLink) {
      const paths = await optional(`processors ${processorsLink}`, () => this.members(processorsLink));
      const cpus = (
        await each('processor', paths ?? [], async (path) => {
          return (await this.client.get(path, processor, { retries: 1 })).data;
        })
      ).filter((p) => (clean(p.ProcessorType) ?? 'CPU') === 'CPU');
      cpuModel ??= cpus.map((p) => clean(p.Model)).find((m) => m !== undefined);
      if (cpuCount === undefined && cpus.length > 0) cpuCount = cpus.length;
    }
    if (cpuCount === undefined && !cpuModel) incomplete.push('cpu: not reported');

    let memory = data.MemorySummary?.TotalSystemMemoryGiB ?? undefined;
    const memoryLink = data.Memory?.['@odata.id'];
    if (memory === undefined && memoryLink) {
      const paths = await optional(`memory ${memoryLink}`, () => this.members(memoryLink));
      const modules = await each('memory', paths ?? [], async (path) => {
        return (await this.client.get(path, memoryModule, { retries: 1 })).data;
      });
      const mib = modules.reduce((sum, m) => sum + (m.CapacityMiB ?? 0), 0);
      if (mib > 0) memory = mib / 1024;
    } else if (memory === undefined) {
      incomplete.push('memory: not reported');
    }
    if (memory !== undefined) memory = roundGiB(memory);

    const manufacturer = clean(data.Manufacturer);
    const model = clean(data.Model);
    const serialNumber = clean(data.SerialNumber);
    const uuid = clean(data.UUID)?.toLowerCase();
    return {
      ...(manufacturer ? { manufacturer } : {}),
      ...(model ? { model } : {}),
      ...(serialNumber ? { serialNumber } : {}),
      ...(uuid ? { uuid } : {}),
      cpu: {
        ...(cpuCount !== undefined ? { count: cpuCount } : {}),
        ...(cpuModel ? { model: cpuModel } : {}),
      },
      ...(memory !== undefined ? { memoryGiB: memory } : {}),
      nics,
      disks,
      incomplete,
    };
  }

  async validateCredentials(): Promise<void> {
    await this.client.refreshCredentials();
    // The service root is anonymous; the Systems collection is not.
    const root = await this.client.serviceRoot();
    await this.client.get(root.Systems?.['@odata.id'] ?? '/redfish/v1/Systems', collection);
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private disk(
    name: string | null | undefined,
    size: number | null | undefined,
    model: string | null | undefined,
    serial: string | null | undefined,
  ): DiskInventory {
    return {
      ...(clean(name) ? { name: clean(name)! } : {}),
      ...(typeof size === 'number' ? { sizeBytes: size } : {}),
      ...(clean(model) ? { model: clean(model)! } : {}),
      ...(clean(serial) ? { serialNumber: clean(serial)! } : {}),
    };
  }

  /** Member paths of a collection, following nextLink pages. */
  private async members(path: string): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = path;
    for (let page = 0; next && page < MAX_COLLECTION_PAGES; page++) {
      const res: RedfishResponse<Collection> = await this.client.get(next, collection, { retries: 1 });
      out.push(...res.data.Members.map((m) => m['@odata.id']));
      next = clean(res.data['Members@odata.nextLink']);
    }
    return out;
  }

  private async resolveSystemPath(): Promise<string> {
    if (this.systemPath) return this.systemPath;
    const root = await this.client.serviceRoot();
    const systems = await this.members(root.Systems?.['@odata.id'] ?? '/redfish/v1/Systems');
    if (systems.length === 1) {
      this.systemPath = systems[0]!;
      this.logger?.debug({ system: this.systemPath }, 'using the only System on the BMC');
      return this.systemPath;
    }
    if (systems.length === 0) throw new BmcNotFoundError(this.address, 'the Redfish service has no Systems');
    // Pasted back as written: the same scheme (+http, vendor prefix) and host:port, the System path added.
    throw new BmcAddressError(
      this.address,
      `the BMC has ${systems.length} Systems; add the one to manage to the address: ${systems
        .map((s) => `${this.target.scheme}://${this.target.key}${s.replace(/\/+$/, '')}`)
        .join(', ')}`,
      { field: this.addressField },
    );
  }

  private async system(): Promise<RedfishResponse<ComputerSystem>> {
    const path = await this.resolveSystemPath();
    try {
      return await this.client.get(path, computerSystem);
    } catch (error) {
      if (!(error instanceof BmcNotFoundError)) throw error;
      let known = '';
      try {
        const root = await this.client.serviceRoot();
        const systems = await this.members(root.Systems?.['@odata.id'] ?? '/redfish/v1/Systems');
        known = systems.length
          ? `; Systems on this BMC: ${systems.join(', ')}`
          : '; the BMC lists no Systems';
      } catch {
        // listing is a courtesy for the message
      }
      throw new BmcNotFoundError(this.address, `System ${path} does not exist${known}`, { cause: error });
    }
  }

  private async resetInfo(data: ComputerSystem): Promise<{ target: string; allowed: string[] | undefined }> {
    if (this.resetAllowed) return this.resetAllowed;
    const action = data.Actions?.['#ComputerSystem.Reset'];
    const path = await this.resolveSystemPath();
    const target = action?.target ?? `${path}/Actions/ComputerSystem.Reset`;
    let allowed = action?.['ResetType@Redfish.AllowableValues'] ?? undefined;
    const infoPath = action?.['@Redfish.ActionInfo'];
    if (!allowed && infoPath) {
      try {
        const info = await this.client.get(infoPath, actionInfo, { retries: 1 });
        allowed = info.data.Parameters?.find((p) => p.Name === 'ResetType')?.AllowableValues ?? undefined;
      } catch (error) {
        this.logger?.debug(
          { error: (error as Error).message },
          'ActionInfo unreadable; assuming standard reset types',
        );
      }
    }
    this.resetAllowed = { target, allowed: allowed ?? undefined };
    return this.resetAllowed;
  }

  /** Whether the System offers a reset type for an intent. */
  private async offers(intent: ResetIntent, data: ComputerSystem): Promise<boolean> {
    const { allowed } = await this.resetInfo(data);
    return chooseResetType(intent, allowed) !== undefined;
  }

  /** No graceful type: refuse, or (when allowed) say so once and let the caller force it. */
  private async gracefulUnavailable(data: ComputerSystem, what: string, allowForced: boolean): Promise<void> {
    const { allowed } = await this.resetInfo(data);
    const offered = `it offers ${(allowed ?? []).join(', ')}`;
    if (!allowForced) {
      throw new BmcUnsupportedError(
        this.address,
        `a graceful ${what} (${offered}); only a forced ${what} is possible, and it was not allowed (--force)`,
      );
    }
    this.logger?.warn({ allowed }, `no graceful reset type advertised; forcing the ${what}`);
    this.onNotice?.({
      code: 'GracefulUnavailable',
      message: `the BMC offers no graceful ${what} (${offered}); forced ${what} as allowed`,
    });
  }

  /** Sends the reset for an intent if the System offers one; false when it offers none. */
  private async tryReset(intent: ResetIntent, data: ComputerSystem): Promise<boolean> {
    const { target, allowed } = await this.resetInfo(data);
    const type = chooseResetType(intent, allowed);
    if (!type) return false;
    this.logger?.debug({ resetType: type, intent }, 'sending reset');
    const res = await this.client.post(target, { ResetType: type });
    if (res.status === 202 && res.location) await this.client.waitForTask(res.location, this.taskTimeoutMs);
    return true;
  }

  private async reset(intent: ResetIntent, data: ComputerSystem): Promise<void> {
    if (await this.tryReset(intent, data)) return;
    const { allowed } = await this.resetInfo(data);
    throw new BmcUnsupportedError(
      this.address,
      `a reset for "${intent}" (it offers ${(allowed ?? []).join(', ')})`,
    );
  }

  private async powerOffThenOn(data: ComputerSystem, timeoutMs: number, graceful: boolean): Promise<void> {
    if (graceful && (await this.tryReset('gracefulOff', data))) {
      if (!(await this.waitForPower('off', timeoutMs))) await this.reset('forceOff', data);
    } else {
      await this.reset('forceOff', data);
    }
    if (!(await this.waitForPower('off', this.powerChangeTimeoutMs))) {
      throw new BmcTimeoutError(this.address, 'power off before power on', this.powerChangeTimeoutMs);
    }
    await this.reset('on', data);
  }

  /** Polls power state; true once it reads `want` within timeoutMs. */
  private async waitForPower(want: 'on' | 'off', timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = mapPowerState((await this.system()).data.PowerState);
      if (state === want) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await sleep(Math.min(this.pollIntervalMs, left));
    }
  }

  /** PATCHes the System with If-Match when the BMC gave an ETag; one re-read on a stale ETag. */
  private async patchSystem(body: unknown, system: RedfishResponse<ComputerSystem>): Promise<void> {
    const path = await this.resolveSystemPath();
    let etag = system.etag;
    for (let attempt = 0; ; attempt++) {
      const res = await this.client.patch(path, body, {
        ...(etag ? { ifMatch: etag } : {}),
        passStatuses: attempt === 0 ? [412, 428] : [],
      });
      if (res.status === 412 || res.status === 428) {
        // 412: changed since read; 428: the BMC insists on If-Match. Re-read for a fresh ETag.
        etag = (await this.system()).etag ?? '*';
        continue;
      }
      if (res.status === 202 && res.location) await this.client.waitForTask(res.location, this.taskTimeoutMs);
      return;
    }
  }
}
