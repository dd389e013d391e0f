// The contract between the BareMetalHost state machine and whatever delivers the OS config
// (today: Talos, src/talos/). The state machine owns power, Matchbox children and states; the hooks
// only add install arguments and report what the booting machine said, through host conditions.
import type { BareMetalHost } from '../../crds/baremetalhost.ts';

/**
 * Conditions the config/install side sets on a BareMetalHost (status.conditions), read by the
 * provisioning handler. Each carries observedGeneration; `reason` names the evidence.
 */
export const INSTALL_CONDITIONS = {
  /** True once the host fetched its config with the current attempt's token. */
  configDelivered: 'ConfigDelivered',
  /** True once the installer reported the install sequence finished (reboot/kexec into the disk). */
  installed: 'Installed',
  /** True once the host booted from disk (boot sequence started after install). */
  bootedFromDisk: 'BootedFromDisk',
  /**
   * True once the OS reports running and ready (Talos: the machine's ready status). Not `Ready`:
   * that one is the host's GitOps health, set by the host controller (health.ts).
   */
  ready: 'TalosReady',
  /** True when the installer reported a config load/validation error; message carries its text. */
  installFailed: 'InstallFailed',
  /** True once the machine reported the wipe of a cleaning boot (deprovisioning). */
  cleaned: 'Cleaned',
} as const;

/** Conditions the config side keeps on a host across attempts (not cleared when one starts). */
export const CONFIG_CONDITIONS = {
  /** False (reason RenderFailed, message the error) while the host's OS config cannot be rendered. */
  rendered: 'ConfigRendered',
} as const;

/**
 * installArgs cannot give the args yet because the OS config is not ready (not rendered, or its
 * render failed): the host waits, with this message as its reason, instead of failing the attempt.
 */
export class ConfigNotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigNotReadyError';
  }
}

export interface ProvisioningHooks {
  /**
   * Called when provisioning attempt `attempt` starts (and again, idempotently, on a restart in
   * the middle of it). Returns kernel args appended to the host's install profile args, e.g.
   * `talos.config=<one-time URL>` and `talos.events.sink=<addr>`. May write status.talos through
   * the store. Must return the same args for the same (host, attempt) so restarts change nothing.
   */
  installArgs(host: BareMetalHost, attempt: number): Promise<string[]>;
  /** Called when the host leaves `provisioning` (done, failed, deprovisioned): revoke tokens. */
  provisioningEnded(host: BareMetalHost): Promise<void>;
  /**
   * Kernel args for the cleaning boot of a deprovisioned host: the OS wipes its install disk and
   * reports it (condition Cleaned). Undefined when this OS delivery cannot clean the host; the same
   * args for the same host until cleaningEnded.
   */
  cleaningArgs?(host: BareMetalHost): Promise<string[] | undefined>;
  /** Called when the cleaning boot is over (reported or given up): revoke what it was given. */
  cleaningEnded?(host: BareMetalHost): Promise<void>;
}

/** No OS config delivery: install args come from the profile alone. */
export const noProvisioningHooks: ProvisioningHooks = {
  installArgs: async () => [],
  provisioningEnded: async () => {},
};
