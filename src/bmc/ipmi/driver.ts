// BmcDriver over IPMI 2.0 (lanplus) with Debian's ipmitool. Cipher suite 17 (SHA-256) is tried first and
// 3 (SHA-1) if the BMC does not offer 17; what worked is remembered per BMC so later calls go straight to it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { IpmiAddress } from '../address.ts';
import type { BmcCredentials, CredentialProvider } from '../credentials.ts';
import {
  type BmcDriver,
  type BootOnceOptions,
  type BootOnceResult,
  type BootOverride,
  type BootOverrideOptions,
  DEFAULT_GRACEFUL_TIMEOUT_MS,
  type Inventory,
  type PowerOffOptions,
  type PowerState,
  type RebootOptions,
} from '../driver.ts';
import {
  BmcAuthError,
  BmcCredentialsError,
  BmcProtocolError,
  BmcTimeoutError,
  BmcUnreachableError,
  BmcUnsupportedError,
} from '../errors.ts';
import { redact } from '../redact.ts';
import { type IpmitoolResult, runIpmitool } from './ipmitool.ts';
import { classifyFailure, meaningfulLines, parseFields, parseGuid, parsePowerStatus } from './parse.ts';

/** IPMI 2.0 user passwords are at most 20 bytes; ipmitool refuses longer ones. */
const IPMI_MAX_PASSWORD_BYTES = 20;

/** Which cipher suite worked, per BMC (host:port). Shared by all drivers of a factory. */
export type CipherCache = Map<string, number>;

export interface IpmiDriverOptions {
  address: IpmiAddress;
  credentials: CredentialProvider;
  /** ipmitool binary (default `ipmitool` on PATH). */
  ipmitool?: string;
  /** Tried in order until one opens a session (default [17, 3]). */
  cipherSuites?: number[];
  cipherCache?: CipherCache;
  /** Deadline for one ipmitool run, after which it is killed (default 20 s). */
  callTimeoutMs?: number;
  /** ipmitool -N / -R (default 2 s, 3 retries). */
  retransmitSeconds?: number;
  retransmits?: number;
  /** How often power state is re-read while waiting (default 2 s). */
  pollIntervalMs?: number;
  /**
   * After `chassis power cycle`, how long the host may stay off before metalbox powers it on itself.
   * Some BMCs (and OpenIPMI's simulator) only power off on a cycle (default 10 s).
   */
  cycleSettleMs?: number;
  logger?: Logger;
}

/**
 * Without `persistent` ipmitool's override applies to the next boot only; efiboot makes that boot UEFI.
 * IPMI boot flags always carry a BIOS boot type bit (there is no "leave it"), so an absent mode is UEFI.
 */
export function bootdevCommand(options: BootOnceOptions & { enabled?: 'Once' | 'Continuous' }): string[] {
  const command = ['chassis', 'bootdev', options.device === 'pxe' ? 'pxe' : 'disk'];
  const flags: string[] = [];
  if ((options.mode ?? 'UEFI') === 'UEFI') flags.push('efiboot');
  if (options.enabled === 'Continuous') flags.push('persistent');
  if (flags.length > 0) command.push(`options=${flags.join(',')}`);
  return command;
}

/** `chassis bootparam get 5` (boot flags) as a BootOverride. */
export function parseBootFlags(text: string): BootOverride {
  if (!/Boot Flags/i.test(text)) return { enabled: 'unknown' };
  const enabled = /Boot Flag Invalid/i.test(text)
    ? 'Disabled'
    : /all future boots/i.test(text)
      ? 'Continuous'
      : /only next boot/i.test(text)
        ? 'Once'
        : 'unknown';
  const selector = /Boot Device Selector\s*:\s*(.+)/i.exec(text)?.[1]?.trim();
  const device =
    selector && /pxe/i.test(selector) ? 'pxe' : selector && /hard-drive/i.test(selector) ? 'disk' : undefined;
  const mode = /BIOS EFI boot/i.test(text) ? 'UEFI' : /legacy/i.test(text) ? 'legacy' : undefined;
  return {
    enabled,
    ...(device ? { device } : {}),
    ...(selector ? { target: selector } : {}),
    ...(mode ? { mode } : {}),
  } as BootOverride;
}

export class IpmiDriver implements BmcDriver {
  readonly protocol = 'ipmi' as const;
  readonly address: string;
  private readonly target: IpmiAddress;
  private readonly provider: CredentialProvider;
  private readonly binary: string | undefined;
  private readonly cipherSuites: number[];
  private readonly cipherCache: CipherCache;
  private readonly callTimeoutMs: number;
  private readonly retransmitSeconds: number;
  private readonly retransmits: number;
  private readonly pollIntervalMs: number;
  private readonly cycleSettleMs: number;
  private readonly logger: Logger | undefined;

  constructor(options: IpmiDriverOptions) {
    this.target = options.address;
    this.address = options.address.display;
    this.provider = options.credentials;
    this.binary = options.ipmitool;
    this.cipherSuites = options.cipherSuites?.length ? options.cipherSuites : [17, 3];
    this.cipherCache = options.cipherCache ?? new Map();
    this.callTimeoutMs = options.callTimeoutMs ?? 20_000;
    this.retransmitSeconds = options.retransmitSeconds ?? 2;
    this.retransmits = options.retransmits ?? 3;
    this.pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.cycleSettleMs = options.cycleSettleMs ?? 10_000;
    this.logger = options.logger?.child({ bmc: this.address });
  }

  async powerState(): Promise<PowerState> {
    return this.readPower(await this.provider());
  }

  async powerOn(): Promise<void> {
    const creds = await this.provider();
    if ((await this.readPower(creds)) === 'on') return;
    await this.power(creds, 'on');
  }

  async powerOff(options: PowerOffOptions = {}): Promise<void> {
    const creds = await this.provider();
    if ((await this.readPower(creds)) === 'off') return;
    if (options.graceful) {
      const timeoutMs = options.timeoutMs ?? DEFAULT_GRACEFUL_TIMEOUT_MS;
      await this.power(creds, 'soft');
      if (await this.waitForPower(creds, 'off', timeoutMs)) return;
      this.logger?.warn({ timeoutMs }, 'graceful shutdown did not finish in time; forcing power off');
    }
    await this.power(creds, 'off');
  }

  async reboot(options: RebootOptions = {}): Promise<void> {
    const creds = await this.provider();
    if ((await this.readPower(creds)) === 'off') {
      // A power cycle or reset of a host that is off fails on most BMCs ("not supported in present state").
      await this.power(creds, 'on');
      return;
    }
    if (options.mode === 'soft') {
      // IPMI has no graceful restart: ACPI shutdown, force after the timeout, then power on.
      await this.power(creds, 'soft');
      if (!(await this.waitForPower(creds, 'off', options.timeoutMs ?? DEFAULT_GRACEFUL_TIMEOUT_MS))) {
        await this.power(creds, 'off');
        await this.waitForPower(creds, 'off', this.cycleSettleMs);
      }
      await this.power(creds, 'on');
      return;
    }
    await this.power(creds, 'cycle');
    // Per the spec a cycle powers back on by itself; confirm, and finish the job on BMCs that do not.
    if (!(await this.waitForPower(creds, 'on', this.cycleSettleMs))) {
      this.logger?.info({ settleMs: this.cycleSettleMs }, 'host still off after power cycle; powering on');
      await this.power(creds, 'on');
    }
  }

  async setBootOnce(options: BootOnceOptions): Promise<BootOnceResult> {
    return this.setBootOverride({ ...options, enabled: 'Once' });
  }

  async setBootOverride(options: BootOverrideOptions): Promise<BootOnceResult> {
    const creds = await this.provider();
    const command = bootdevCommand(options);
    const device = command[2];
    const result = await this.call(creds, command);
    if (!/set boot device to/i.test(result.stdout)) {
      throw new BmcProtocolError(
        this.address,
        `chassis bootdev ${device}: unexpected answer "${this.excerpt(result.stdout + result.stderr, creds)}"`,
      );
    }
    const readBack = await this.readBootFlags(creds);
    return {
      requested: {
        device: options.device,
        enabled: options.enabled,
        ...(options.mode ? { mode: options.mode } : {}),
      },
      readBack,
      persistent: options.enabled === 'Once' && readBack.enabled === 'Continuous',
      // Judged by the device selector only: OpenIPMI's simulator reads back "Boot Flag Invalid" and
      // legacy after every bootdev, yet boots the device; a BMC that reports none is taken at its word.
      honoured: readBack.device === undefined || readBack.device === options.device,
    };
  }

  async bootOverride(): Promise<BootOverride> {
    return this.readBootFlags(await this.provider());
  }

  async clearBootOverride(): Promise<BootOverride> {
    const creds = await this.provider();
    await this.call(creds, ['chassis', 'bootdev', 'none']);
    return this.readBootFlags(creds);
  }

  private async readBootFlags(creds: BmcCredentials): Promise<BootOverride> {
    try {
      return parseBootFlags((await this.call(creds, ['chassis', 'bootparam', 'get', '5'])).stdout);
    } catch (error) {
      if (error instanceof BmcProtocolError) return { enabled: 'unknown' };
      throw error;
    }
  }

  async inventory(): Promise<Inventory> {
    const creds = await this.provider();
    const incomplete: string[] = ['cpu: not available over IPMI', 'memory: not available over IPMI'];
    incomplete.push('nics: not available over IPMI', 'disks: not available over IPMI');
    const optional = async (part: string, command: string[]): Promise<string | undefined> => {
      try {
        return (await this.call(creds, command)).stdout;
      } catch (error) {
        if (error instanceof BmcProtocolError) {
          incomplete.push(`${part}: ${error.message.replace(/^BMC \S+ gave an unusable answer: /, '')}`);
          return undefined;
        }
        throw error;
      }
    };
    const mc = parseFields((await optional('mc info', ['mc', 'info'])) ?? '');
    const guidOut = await optional('system guid', ['mc', 'guid']);
    const fru = parseFields((await optional('fru', ['fru', 'print', '0'])) ?? '');
    const pick = (...keys: string[]) => {
      for (const key of keys) {
        const value = fru.get(key)?.trim();
        if (value) return value;
      }
      return undefined;
    };
    const manufacturer = pick('product manufacturer', 'board mfg') ?? mc.get('manufacturer name')?.trim();
    const model = pick('product name', 'board product');
    const serialNumber = pick('product serial', 'chassis serial', 'board serial');
    const uuid = guidOut ? parseGuid(guidOut) : undefined;
    return {
      ...(manufacturer ? { manufacturer } : {}),
      ...(model ? { model } : {}),
      ...(serialNumber ? { serialNumber } : {}),
      ...(uuid ? { uuid } : {}),
      cpu: {},
      nics: [],
      disks: [],
      incomplete,
    };
  }

  async validateCredentials(): Promise<void> {
    await this.readPower(await this.provider());
  }

  async close(): Promise<void> {
    // Nothing held: every call is its own ipmitool session.
  }

  private async readPower(creds: BmcCredentials): Promise<PowerState> {
    const result = await this.call(creds, ['chassis', 'power', 'status']);
    const state = parsePowerStatus(result.stdout);
    if (!state) {
      throw new BmcProtocolError(
        this.address,
        `chassis power status: unrecognised answer "${this.excerpt(result.stdout, creds)}"`,
      );
    }
    return state;
  }

  private async power(
    creds: BmcCredentials,
    action: 'on' | 'off' | 'soft' | 'cycle' | 'reset',
  ): Promise<void> {
    const result = await this.call(creds, ['chassis', 'power', action]);
    if (!/chassis power control/i.test(result.stdout)) {
      throw new BmcProtocolError(
        this.address,
        `chassis power ${action}: unexpected answer "${this.excerpt(result.stdout + result.stderr, creds)}"`,
      );
    }
    this.logger?.debug({ action }, 'chassis power command accepted');
  }

  private async waitForPower(creds: BmcCredentials, want: 'on' | 'off', timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if ((await this.readPower(creds)) === want) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await sleep(Math.min(this.pollIntervalMs, left));
    }
  }

  private excerpt(text: string, creds: BmcCredentials): string {
    return redact(meaningfulLines(text), [creds.password]) || '(nothing)';
  }

  /** Runs one ipmitool command, walking the cipher suites; throws a typed error on failure. */
  private async call(creds: BmcCredentials, command: string[]): Promise<IpmitoolResult> {
    if (Buffer.byteLength(creds.password, 'utf8') > IPMI_MAX_PASSWORD_BYTES) {
      throw new BmcCredentialsError(
        this.address,
        `the password is longer than the ${IPMI_MAX_PASSWORD_BYTES} bytes IPMI 2.0 allows; the BMC cannot have such a password`,
      );
    }
    const cached = this.cipherCache.get(this.target.key);
    const suites =
      cached !== undefined ? [cached, ...this.cipherSuites.filter((s) => s !== cached)] : this.cipherSuites;
    const what = `ipmitool ${command.join(' ')}`;
    let lastCipherFailure = '';
    for (const suite of suites) {
      const result = await runIpmitool(
        {
          host: this.target.host,
          port: this.target.port,
          username: creds.username,
          password: creds.password,
          cipherSuite: suite,
        },
        {
          ...(this.binary ? { binary: this.binary } : {}),
          timeoutMs: this.callTimeoutMs,
          retransmitSeconds: this.retransmitSeconds,
          retransmits: this.retransmits,
        },
        command,
      );
      if (result.spawnError) {
        throw new BmcUnsupportedError(
          this.address,
          `IPMI from this host: cannot run ${this.binary ?? 'ipmitool'} (${result.spawnError.code ?? result.spawnError.message}); install Debian's ipmitool`,
        );
      }
      if (result.timedOut) throw new BmcTimeoutError(this.address, what, this.callTimeoutMs);
      if (result.code === 0) {
        if (cached !== suite) {
          this.cipherCache.set(this.target.key, suite);
          this.logger?.debug({ cipherSuite: suite }, 'IPMI cipher suite works; remembered for this BMC');
        }
        return result;
      }
      const output = `${result.stderr}\n${result.stdout}`;
      const failure = classifyFailure(output);
      const detail = this.excerpt(output, creds);
      switch (failure) {
        case 'cipher':
          lastCipherFailure = detail;
          if (cached === suite) this.cipherCache.delete(this.target.key);
          this.logger?.debug({ cipherSuite: suite, detail }, 'cipher suite refused; trying the next');
          continue;
        case 'auth':
          throw new BmcAuthError(this.address, detail, { username: creds.username });
        case 'privilege':
          throw new BmcAuthError(this.address, `insufficient privilege for ${command.join(' ')}: ${detail}`, {
            username: creds.username,
          });
        case 'unreachable':
          throw new BmcUnreachableError(
            this.address,
            `no IPMI answer on UDP port ${this.target.port}: ${detail}`,
          );
        case 'session':
          throw new BmcProtocolError(this.address, `could not open an IPMI session: ${detail}`);
        default:
          throw new BmcProtocolError(this.address, `${command.join(' ')} failed: ${detail}`);
      }
    }
    throw new BmcUnsupportedError(
      this.address,
      `any of the IPMI cipher suites ${suites.join(', ')} (last answer: ${lastCipherFailure})`,
    );
  }
}
