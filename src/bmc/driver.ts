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
  /**
   * graceful only: when the BMC offers no graceful reset type at all, true forces power off at once
   * (and says so through onNotice, code GracefulUnavailable); false (default) refuses with
   * BmcUnsupportedError before anything is sent. A graceful request never silently becomes a forced one.
   */
  allowForced?: boolean;
}

export interface RebootOptions {
  /** soft: graceful restart (falls back to shutdown + on); hard: immediate reset / power cycle. */
  mode?: 'soft' | 'hard';
  /** soft only: how long the OS may take to go down before the reset is forced (default 120 s). */
  timeoutMs?: number;
  /** soft only: as PowerOffOptions.allowForced, for a BMC with neither graceful restart nor shutdown. */
  allowForced?: boolean;
}

export interface BootOnceOptions {
  device: BootDevice;
  /**
   * Boot mode for the boot, only when the caller asks for one. Absent: the BMC's boot mode is left as
   * it is (never changed behind the operator's back; on iDRAC a change is a BIOS job).
   */
  mode?: BootMode;
}

export interface BootOverrideOptions extends BootOnceOptions {
  /** Once: the next boot only; Continuous: every boot until changed (e.g. disk after an install). */
  enabled: 'Once' | 'Continuous';
}

/** The boot source override as the BMC reports it after a change (read back, not assumed). */
export interface BootOverride {
  /** BootSourceOverrideEnabled as read back; 'unknown' when the BMC cannot report it. */
  enabled: 'Once' | 'Continuous' | 'Disabled' | 'unknown';
  /** pxe or disk when the target is one of those. */
  device?: BootDevice;
  /** The BMC's own target name (Redfish: Pxe, Hdd, None, ...). */
  target?: string;
  mode?: BootMode;
}

export interface BootOnceResult {
  /** What was asked. */
  requested: { device: BootDevice; enabled: 'Once' | 'Continuous'; mode?: BootMode };
  /** What the BMC really holds afterwards (Redfish: a GET after the PATCH). */
  readBack: BootOverride;
  /**
   * A Once request the BMC keeps for every boot (reads back Continuous, as sushy's libvirt driver and
   * some real BMCs do): after the boot the caller must point the override at disk or clear it.
   */
  persistent: boolean;
  /** The read-back target is the one asked for and the override is enabled. */
  honoured: boolean;
}

/** Something an operator should see once (CLI line, Event, condition message); never a secret. */
export interface BmcNotice {
  code:
    | 'BasicAuthFallback'
    | 'GracefulUnavailable'
    | 'GracefulTimedOut'
    | 'BootOverridePersistent'
    | 'BootOverrideNotHonoured'
    | 'BootModeUnavailable'
    | 'VendorDetected';
  message: string;
}

export type BmcNoticeSink = (notice: BmcNotice) => void;

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
  /** The next boot (only) goes to the given device; the result says what the BMC really did. */
  setBootOnce(options: BootOnceOptions): Promise<BootOnceResult>;
  /** Sets the override Once or Continuous (e.g. disk, Continuous, after an install). */
  setBootOverride(options: BootOverrideOptions): Promise<BootOnceResult>;
  /** Reads the boot source override. */
  bootOverride(): Promise<BootOverride>;
  /** Disables the boot source override (the firmware's boot order applies); returns the read-back. */
  clearBootOverride(): Promise<BootOverride>;
  inventory(): Promise<Inventory>;
  /** Resolves if the BMC accepts the credentials; rejects with BmcAuthError otherwise. */
  validateCredentials(): Promise<void>;
  /** Logs out of any session and releases connections. The driver is unusable afterwards. */
  close(): Promise<void>;
}

export const DEFAULT_GRACEFUL_TIMEOUT_MS = 120_000;
