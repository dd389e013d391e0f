// What metalbox asks of a BMC, whatever protocol speaks to it. Implementations: redfish/driver.ts,
// ipmi/driver.ts; factory.ts picks one from the address scheme and wraps it with protection.ts.

/** Transitional states are reported as such so a controller can wait instead of re-issuing a command. */
export type PowerState = 'on' | 'off' | 'poweringOn' | 'poweringOff' | 'unknown';

export type BootDevice = 'pxe' | 'disk';
export type BootMode = 'UEFI' | 'legacy';

export interface PowerOffOptions {
  /** Ask the OS to shut down first (ACPI); force the power off if it has not happened within timeoutMs. */
  graceful?: boolean;
  /** How long a graceful shutdown may take before power is forced off (default 120 s). */
  timeoutMs?: number;
}

export interface RebootOptions {
  /** soft: graceful restart (falls back to shutdown + on); hard: immediate reset / power cycle. */
  mode?: 'soft' | 'hard';
  /** soft only: how long the OS may take to go down before the reset is forced (default 120 s). */
  timeoutMs?: number;
}

export interface BootOnceOptions {
  device: BootDevice;
  /** Boot mode for that one boot; default UEFI. */
  mode?: BootMode;
}

export interface NicInventory {
  name?: string;
  /** Lower-case, colon-separated. */
  mac: string;
  link: 'up' | 'down' | 'unknown';
  speedMbps?: number;
}

export interface DiskInventory {
  name?: string;
  sizeBytes?: number;
  model?: string;
  serialNumber?: string;
}

export interface Inventory {
  manufacturer?: string;
  model?: string;
  serialNumber?: string;
  /** SMBIOS system UUID, lower-case. */
  uuid?: string;
  cpu: { count?: number; model?: string };
  memoryGiB?: number;
  nics: NicInventory[];
  disks: DiskInventory[];
  /** Parts the BMC could not report and why, e.g. "storage: HTTP 501". Empty when complete. */
  incomplete: string[];
}

export interface BmcDriver {
  /** 'redfish' or 'ipmi'. */
  readonly protocol: 'redfish' | 'ipmi';
  /** The address, for messages and metrics; never contains credentials. */
  readonly address: string;
  powerState(): Promise<PowerState>;
  /** Returns once the BMC accepted the request; the change may take a while to show in powerState(). */
  powerOn(): Promise<void>;
  /** Non-graceful: returns once accepted. Graceful: returns once off, forcing it after timeoutMs. */
  powerOff(options?: PowerOffOptions): Promise<void>;
  /** A powered-off host is powered on instead. */
  reboot(options?: RebootOptions): Promise<void>;
  /** The next boot (only) goes to the given device. */
  setBootOnce(options: BootOnceOptions): Promise<void>;
  inventory(): Promise<Inventory>;
  /** Resolves if the BMC accepts the credentials; rejects with BmcAuthError otherwise. */
  validateCredentials(): Promise<void>;
  /** Logs out of any session and releases connections. The driver is unusable afterwards. */
  close(): Promise<void>;
}

export const DEFAULT_GRACEFUL_TIMEOUT_MS = 120_000;
