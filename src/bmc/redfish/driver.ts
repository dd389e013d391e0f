// BmcDriver over Redfish: one ComputerSystem, found from the address (or the only System on the service).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RedfishAddress } from '../address.ts';
import type { CredentialProvider } from '../credentials.ts';
import {
  type BmcDriver,
  type BootOnceOptions,
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
import { quirksFor, type RedfishQuirks } from './quirks.ts';
import { chooseResetType, type ResetIntent } from './reset-types.ts';
import {
  actionInfo,
  type Collection,
  type ComputerSystem,
  collection,
  computerSystem,
  drive,
  ethernetInterface,
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
  private readonly quirks: RedfishQuirks;
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
    this.quirks = quirksFor(options.address.vendor);
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
    });
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
      if (await this.tryReset('gracefulOff', data)) {
        if (await this.waitForPower('off', timeoutMs)) return;
        this.logger?.warn({ timeoutMs }, 'graceful shutdown did not finish in time; forcing power off');
      } else {
        this.logger?.info('no graceful shutdown reset type advertised; forcing power off');
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
      // No GracefulRestart (e.g. iDRAC): shut down gracefully, force after the timeout, power on.
      await this.powerOffThenOn(data, options.timeoutMs ?? DEFAULT_GRACEFUL_TIMEOUT_MS, true);
      return;
    }
    if (await this.tryReset('forceRestart', data)) return;
    await this.powerOffThenOn(data, this.powerChangeTimeoutMs, false);
  }

  async setBootOnce(options: BootOnceOptions): Promise<void> {
    await this.client.refreshCredentials();
    const target = options.device === 'pxe' ? 'Pxe' : 'Hdd';
    const mode = (options.mode ?? 'UEFI') === 'UEFI' ? 'UEFI' : 'Legacy';
    const system = await this.system();
    const boot = system.data.Boot;
    if (!boot)
      throw new BmcUnsupportedError(this.address, 'boot source override (the System has no Boot property)');
    const targets = boot['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (targets && targets.length > 0 && !targets.includes(target)) {
      throw new BmcUnsupportedError(this.address, `boot target ${target} (it offers ${targets.join(', ')})`);
    }
    const currentMode = clean(boot.BootSourceOverrideMode);
    const modes = boot['BootSourceOverrideMode@Redfish.AllowableValues'];
    const hasMode = currentMode !== undefined || (modes?.length ?? 0) > 0;
    if (modes && modes.length > 0 && !modes.includes(mode)) {
      throw new BmcUnsupportedError(this.address, `boot mode ${mode} (it offers ${modes.join(', ')})`);
    }
    let sendMode = false;
    if (hasMode) {
      if (this.quirks.bootModeWrite === 'never') {
        if (currentMode !== undefined && currentMode !== mode) {
          throw new BmcUnsupportedError(
            this.address,
            `changing the boot mode through Redfish (it is ${currentMode}; change it to ${mode} in the BIOS settings)`,
          );
        }
      } else {
        sendMode = this.quirks.bootModeWrite === 'always' || currentMode !== mode;
      }
    } else if (mode !== 'UEFI') {
      this.logger?.info({ mode }, 'the System has no BootSourceOverrideMode; boot mode left as is');
    }

    const patch = { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: target };
    try {
      await this.patchSystem({ Boot: sendMode ? { ...patch, BootSourceOverrideMode: mode } : patch }, system);
    } catch (error) {
      // A BMC that will not take the mode property, even unchanged: the mode is already right, so retry
      // without it rather than fail the boot override.
      const rejected = error instanceof BmcProtocolError && error.status === 400;
      if (!(rejected && sendMode && currentMode === mode)) throw error;
      this.logger?.info('BMC rejected BootSourceOverrideMode; retrying the override without it');
      await this.patchSystem({ Boot: patch }, await this.system());
    }
    this.logger?.debug({ target, mode: sendMode ? mode : undefined }, 'one-time boot override set');
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

    const nics: NicInventory[] = [];
    const nicsLink = data.EthernetInterfaces?.['@odata.id'];
    if (nicsLink) {
      await optional('nics', async () => {
        for (const path of await this.members(nicsLink)) {
          const nic = (await this.client.get(path, ethernetInterface, { retries: 1 })).data;
          const mac = clean(nic.MACAddress) ?? clean(nic.PermanentMACAddress);
          if (!mac) continue;
          nics.push({
            ...((clean(nic.Name) ?? clean(nic.Id)) ? { name: (clean(nic.Name) ?? clean(nic.Id))! } : {}),
            mac: mac.toLowerCase().replaceAll('-', ':'),
            link: mapLink(nic.LinkStatus),
            ...(typeof nic.SpeedMbps === 'number' ? { speedMbps: nic.SpeedMbps } : {}),
          });
        }
      });
    } else {
      incomplete.push('nics: not advertised');
    }

    const disks: DiskInventory[] = [];
    const storageLink = data.Storage?.['@odata.id'];
    const simpleLink = data.SimpleStorage?.['@odata.id'];
    const fromStorage =
      storageLink &&
      (await optional('storage', async () => {
        for (const path of await this.members(storageLink)) {
          const controller = (await this.client.get(path, storage, { retries: 1 })).data;
          for (const link of controller.Drives ?? []) {
            const d = (await this.client.get(link['@odata.id'], drive, { retries: 1 })).data;
            disks.push(this.disk(d.Name, d.CapacityBytes, d.Model, d.SerialNumber));
          }
        }
        return true;
      }));
    if (!fromStorage && simpleLink) {
      await optional('simpleStorage', async () => {
        for (const path of await this.members(simpleLink)) {
          const controller = (await this.client.get(path, simpleStorage, { retries: 1 })).data;
          for (const d of controller.Devices ?? [])
            disks.push(this.disk(d.Name, d.CapacityBytes, d.Model, undefined));
        }
      });
    }
    if (!storageLink && !simpleLink) incomplete.push('disks: not advertised');

    let cpuModel = clean(data.ProcessorSummary?.Model);
    const processorsLink = data.Processors?.['@odata.id'];
    if (!cpuModel && processorsLink) {
      cpuModel = await optional('processors', async () => {
        const [first] = await this.members(processorsLink);
        return first
          ? clean((await this.client.get(first, processor, { retries: 1 })).data.Model)
          : undefined;
      });
    }
    const cpuCount = data.ProcessorSummary?.Count ?? undefined;
    const memory = data.MemorySummary?.TotalSystemMemoryGiB ?? undefined;
    if (cpuCount === undefined && !cpuModel) incomplete.push('cpu: not reported');
    if (memory === undefined) incomplete.push('memory: not reported');

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
    throw new BmcAddressError(
      this.address,
      `the BMC has ${systems.length} Systems; add the one to manage to the address: ${systems
        .map((s) => `${this.target.baseUrl.replace(/^https?/, 'redfish')}${s}`)
        .join(', ')}`,
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
