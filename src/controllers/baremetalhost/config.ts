// The `baremetalhost` section of the controller's --config file: limits, timeouts and polling.
// Defaults follow Metal3 where it has one (provisioning limit 20, 5 provisioning retries).
import { z } from 'zod';

export const hostControllerConfig = z
  .strictObject({
    /** Hosts provisioning or deprovisioning at once; the rest wait with operationalStatus delayed. */
    provisioningLimit: z.int().min(1).max(10_000).default(20),
    /** Failed install attempts before the host stays in error until its spec changes. */
    maxProvisioningRetries: z.int().min(1).max(100).default(5),
    /** Default for spec.provisioningTimeoutSeconds: how long one install attempt may take. */
    provisioningTimeoutSeconds: z.int().min(1).max(86_400).default(3600),
    /** How often a host in a stable state has its power read (drift detection). */
    powerPollSeconds: z.number().min(0.1).max(3600).default(60),
    /** How often a host waiting for something (Matchbox sync, install, power change) is looked at again. */
    waitPollSeconds: z.number().min(0.05).max(600).default(5),
    /** After a power action, how long a different observed power state is taken as "still changing". */
    powerSettleSeconds: z.number().min(0).max(600).default(30),
    /** Backoff after a failed step: base·2^(errors−1), capped, minus up to 50% jitter. */
    errorBackoff: z
      .strictObject({
        baseSeconds: z.number().min(0.01).max(3600).default(10),
        capSeconds: z.number().min(0.01).max(86_400).default(600),
      })
      .default({ baseSeconds: 10, capSeconds: 600 }),
    /** How long a delayed host waits before asking for a provisioning slot again (jittered). */
    delayedRetrySeconds: z.number().min(0.05).max(600).default(10),
    /**
     * bootFromDiskMethod bmc: how long after the install the disk boot may take to be reported
     * before the host is powered off once (for BMCs that apply a boot device only at a cold start).
     */
    coldStartSeconds: z.number().min(1).max(3600).default(180),
    /** Hosts reconciled in parallel. */
    workers: z.int().min(1).max(256).default(8),
    /** Per-BMC protection (see src/bmc/protection.ts). */
    bmc: z
      .strictObject({
        perBmcConcurrency: z.int().min(1).max(64).optional(),
        globalConcurrency: z.int().min(1).max(1024).optional(),
        failureThreshold: z.int().min(1).max(100).optional(),
        openSeconds: z.number().min(0.1).max(3600).optional(),
        requestTimeoutSeconds: z.number().min(0.1).max(600).optional(),
        /** Redfish: extra attempts on 5xx/refused connections. */
        retries: z.int().min(0).max(10).optional(),
        /** IPMI: how long a host may stay off after `power cycle` before it is powered on. */
        cycleSettleSeconds: z.number().min(0).max(600).optional(),
      })
      .default({}),
  })
  .describe('BareMetalHost controller settings.');

export type HostControllerConfig = z.infer<typeof hostControllerConfig>;

/** Parses the `baremetalhost` section (absent: all defaults); errors name the offending field. */
export function parseHostControllerConfig(section: unknown): HostControllerConfig {
  const result = hostControllerConfig.safeParse(section ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `baremetalhost.${i.path.join('.')}: ${i.message}`);
  throw new Error(`invalid controller config: ${problems.join('; ')}`);
}
