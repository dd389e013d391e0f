// SIMULATION: a bare-metal machine without hardware. It watches its BMC (power and the one-time
// boot override) like firmware would, and when it powers on it boots: from a one-time PXE override
// or, with an empty disk, by falling back to the network (the seed's "disk, then PXE" order), it
// walks the real HTTP boot chain against Matchbox — /boot.ipxe → /ipxe?mac=… → kernel and initrd
// → the talos.config URL — then "installs" (the disk is marked installed) and reports completion;
// otherwise it boots its disk. Everything it logs and reports is labelled SIMULATION.
import { parseIpxe } from '../matchbox/http.ts';
import { type Logger, silentLogger } from '../runtime/logger.ts';
import type { BmcReading, SimulatedBmcView } from './bmc-view.ts';
import type { InstallReporter } from './reporter.ts';

export type MachinePhase =
  | 'off'
  | 'booting'
  | 'installing'
  /** Running the installed OS from disk. */
  | 'running-disk'
  /** Running a network-booted kernel without talos.config (e.g. a rescue image). */
  | 'running-netboot'
  /** Nothing bootable (no boot answer, failed download, empty disk). */
  | 'halted';

/** One boot, as the machine experienced it. */
export interface BootRecord {
  at: string;
  /** What the firmware did: a one-time PXE override, the disk, or PXE after an empty disk. */
  via: 'pxe-once' | 'disk' | 'pxe-fallback';
  /** What Matchbox answered (network boots only). */
  answer?: 'install' | 'exit' | 'netboot' | 'none';
  kernel?: string;
  args?: string[];
  configFetched?: boolean;
  outcome: MachinePhase;
  detail: string;
}

export interface SimulatedMachineOptions {
  name: string;
  /** Boot NIC, any case/separator. */
  mac: string;
  uuid?: string;
  bmc: SimulatedBmcView;
  /** Matchbox HTTP base URLs, tried in order (the first that answers, like a VIP). */
  matchboxUrls: string[];
  reporter?: InstallReporter;
  /** How often the BMC is read (default 500 ms). */
  pollMs?: number;
  /** How long the simulated install takes (default 1 s). */
  installMs?: number;
  logger?: Logger;
  /** Starts with an installed disk (a machine metalbox adopts). */
  diskInstalled?: boolean;
  /**
   * Fetches the talos.config URL (default: global fetch). Lets several machines on one computer
   * fetch from their own source address, as the config server and event sink tell hosts apart by it.
   */
  fetchConfig?: (url: string) => Promise<{ status: number; body: string }>;
}

class Halt extends Error {}

export class SimulatedMachine {
  readonly name: string;
  readonly boots: BootRecord[] = [];
  #opts: SimulatedMachineOptions;
  #mac: string;
  #logger: Logger;
  #phase: MachinePhase = 'off';
  #diskInstalled: boolean;
  #lastPower: 'on' | 'off' | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #boot: AbortController | undefined;
  #bootDone: Promise<void> = Promise.resolve();
  #polling = false;

  constructor(opts: SimulatedMachineOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#mac = opts.mac.toLowerCase().replaceAll('-', ':');
    this.#logger = opts.logger ?? silentLogger;
    this.#diskInstalled = opts.diskInstalled === true;
  }

  get phase(): MachinePhase {
    return this.#phase;
  }

  get diskInstalled(): boolean {
    return this.#diskInstalled;
  }

  /** Completed installs (each one wrote the disk). */
  get installs(): number {
    return this.boots.filter((b) => b.configFetched === true).length;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#log('info', 'machine started (SIMULATION: no hardware; watching the BMC)');
    const tick = async () => {
      if (!this.#running) return;
      await this.poll();
      if (this.#running) this.#timer = setTimeout(tick, this.#opts.pollMs ?? 500);
    };
    void tick();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#boot?.abort();
    await this.#bootDone.catch(() => {});
    await this.#opts.bmc.close();
  }

  /** One look at the BMC; acts on power edges. Exposed for tests that step the machine. */
  async poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      let reading: BmcReading;
      try {
        reading = await this.#opts.bmc.read();
      } catch (error) {
        this.#log('debug', `cannot read the BMC: ${(error as Error).message}`);
        return;
      }
      const before = this.#lastPower;
      this.#lastPower = reading.power;
      if (reading.power === 'off') {
        if (before === 'on') this.#powerLost();
        return;
      }
      // A machine found running at start keeps running whatever it runs.
      if (before === undefined) {
        this.#phase = this.#diskInstalled ? 'running-disk' : 'halted';
        return;
      }
      if (before === 'off') this.#startBoot(reading.bootOncePxe);
    } finally {
      this.#polling = false;
    }
  }

  #powerLost(): void {
    this.#boot?.abort();
    this.#phase = 'off';
    this.#log('info', 'powered off');
  }

  #startBoot(bootOncePxe: boolean): void {
    this.#boot?.abort();
    const abort = new AbortController();
    this.#boot = abort;
    this.#bootDone = this.#firmware(bootOncePxe, abort.signal).catch((error: unknown) => {
      if (!abort.signal.aborted) this.#log('warn', `boot failed: ${(error as Error).message}`);
    });
  }

  /** Firmware: one-time override first, then disk, then network. */
  async #firmware(bootOncePxe: boolean, signal: AbortSignal): Promise<void> {
    this.#phase = 'booting';
    if (bootOncePxe) {
      await this.#opts.bmc.consumeBootOnce().catch((e: unknown) => {
        this.#log('warn', `could not clear the one-time boot override: ${(e as Error).message}`);
      });
      await this.#networkBoot('pxe-once', signal);
      return;
    }
    if (this.#diskInstalled) {
      await this.#diskBoot('disk');
      return;
    }
    await this.#networkBoot('pxe-fallback', signal);
  }

  async #diskBoot(via: BootRecord['via'], record?: Partial<BootRecord>): Promise<void> {
    if (!this.#diskInstalled) {
      this.#finish({ ...record, via, outcome: 'halted', detail: 'no bootable disk' });
      return;
    }
    this.#finish({ ...record, via, outcome: 'running-disk', detail: 'booted the installed OS from disk' });
    await this.#opts.reporter?.report('booted', `${this.name} booted its installed OS from disk`);
  }

  async #networkBoot(via: 'pxe-once' | 'pxe-fallback', signal: AbortSignal): Promise<void> {
    const record: Partial<BootRecord> = { via };
    try {
      const { base, script } = await this.#bootstrap(signal);
      const chain = /^chain\s+(\S+)/m.exec(script)?.[1];
      if (!chain) throw new Halt(`/boot.ipxe has no chain line`);
      const ipxeUrl = new URL(this.#expand(chain), `${base}/boot.ipxe`).toString();
      const answer = await this.#get(ipxeUrl, signal);
      if (answer.status === 404) {
        record.answer = 'none';
        this.#log('info', `Matchbox has no boot answer for ${this.#mac}; iPXE gives up`);
        await this.#diskBoot(via, record);
        return;
      }
      if (answer.status !== 200) throw new Halt(`GET ${ipxeUrl}: HTTP ${answer.status}`);
      const boot = parseIpxe(answer.body);
      const kernelUrl = new URL(this.#expand(boot.kernel), ipxeUrl).toString();
      const kernel = await this.#get(kernelUrl, signal);
      if (kernel.status !== 200) throw new Halt(`kernel ${boot.kernel}: HTTP ${kernel.status}`);
      record.kernel = boot.kernel;
      record.args = boot.args;
      if (kernel.body.startsWith('#!ipxe')) {
        // An iPXE script as the "kernel": Matchbox's boot-from-disk answer exits to the next device.
        if (!/^exit\b/m.test(kernel.body))
          throw new Halt(`kernel ${boot.kernel} is an iPXE script without exit`);
        record.answer = 'exit';
        this.#log('info', 'Matchbox answered "exit": firmware continues with the disk');
        await this.#diskBoot(via, record);
        return;
      }
      for (const initrd of boot.initrd) {
        const path = initrd.split(/\s+/).at(-1) ?? initrd;
        const res = await this.#get(new URL(this.#expand(path), ipxeUrl).toString(), signal);
        if (res.status !== 200) throw new Halt(`initrd ${path}: HTTP ${res.status}`);
      }
      const configArg = boot.args.find((a) => a.startsWith('talos.config='));
      if (!configArg) {
        record.answer = 'netboot';
        this.#finish({
          ...record,
          via,
          outcome: 'running-netboot',
          detail: `running ${boot.kernel} from the network`,
        });
        return;
      }
      record.answer = 'install';
      const configUrl = this.#expand(configArg.slice('talos.config='.length));
      const config = this.#opts.fetchConfig
        ? await this.#opts.fetchConfig(configUrl)
        : await this.#get(configUrl, signal);
      if (config.status !== 200) throw new Halt(`talos.config ${configUrl}: HTTP ${config.status}`);
      record.configFetched = true;
      this.#log('info', `fetched talos.config (${config.body.length} bytes); installing`);
      this.#phase = 'installing';
      await this.#opts.reporter?.report(
        'config-fetched',
        `${this.name} fetched its config (${configUrl.replace(/\?.*$/, '?…')})`,
      );
      await sleep(this.#opts.installMs ?? 1000, signal);
      this.#diskInstalled = true;
      this.#finish({ ...record, via, outcome: 'installing', detail: 'installed to disk; rebooting' });
      await this.#opts.reporter?.report('installed', `${this.name} installed to disk and reboots`);
      // The installer reboots the machine (power stays on); the override is spent, so: disk.
      await sleep(50, signal);
      this.#phase = 'booting';
      await this.#diskBoot('disk');
    } catch (error) {
      if (signal.aborted) return;
      const detail = error instanceof Halt ? error.message : `boot chain failed: ${(error as Error).message}`;
      this.#finish({ ...record, via, outcome: 'halted', detail });
    }
  }

  /** GET /boot.ipxe from the first Matchbox that answers. */
  async #bootstrap(signal: AbortSignal): Promise<{ base: string; script: string }> {
    const problems: string[] = [];
    for (const url of this.#opts.matchboxUrls) {
      const base = url.replace(/\/+$/, '');
      try {
        const res = await this.#get(`${base}/boot.ipxe`, signal);
        if (res.status === 200) return { base, script: res.body };
        problems.push(`${base}: HTTP ${res.status}`);
      } catch (error) {
        if (signal.aborted) throw error;
        problems.push(`${base}: ${(error as Error).message}`);
      }
    }
    throw new Halt(`no Matchbox answered /boot.ipxe (${problems.join('; ')})`);
  }

  /** iPXE's settings expansion for what Matchbox's bootstrap uses. */
  #expand(text: string): string {
    const values: Record<string, string> = {
      uuid: this.#opts.uuid ?? '',
      'mac:hexhyp': this.#mac.replaceAll(':', '-'),
      mac: this.#mac,
      domain: '',
      hostname: '',
      serial: '',
      'buildarch:uristring': 'x86_64',
    };
    return text.replace(/\$\{([^}]+)\}/g, (whole, name: string) => values[name] ?? whole);
  }

  async #get(url: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) });
    return { status: res.status, body: await res.text() };
  }

  #finish(record: Omit<BootRecord, 'at'>): void {
    this.#phase = record.outcome;
    this.boots.push({ at: new Date().toISOString(), ...record });
    this.#log('info', `${record.via}: ${record.detail}`);
  }

  #log(level: 'debug' | 'info' | 'warn', msg: string): void {
    this.#logger[level]({ simulation: true, machine: this.name }, `SIMULATION ${this.name}: ${msg}`);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
