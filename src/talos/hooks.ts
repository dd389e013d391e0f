// The Talos implementation of the BareMetalHost controller's ProvisioningHooks: each provisioning
// attempt gets a one-time config URL (token derived from the server key, host uid, attempt and
// expiry; only its sha256 is stored) and the event sink address as kernel args. The same attempt
// yields the same args again (a restart in the middle of an attempt changes nothing), a new
// attempt a new token, and leaving provisioning revokes the token.
import { ConfigNotReadyError, type ProvisioningHooks } from '../controllers/baremetalhost/hooks.ts';
import type { BareMetalHost } from '../crds/baremetalhost.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { type Logger, silentLogger } from '../runtime/logger.ts';
import { timestamp } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { hostId } from './configserver.ts';
import { changeHostStatus, type Host } from './host-status.ts';
import { talosInstallArgs } from './kernel-args.ts';
import { deriveToken, hashToken } from './tokens.ts';

export interface TalosHooksDeps {
  store: ResourceStore;
  /** The server key tokens are derived from (loadTokenKey). */
  tokenKey: Buffer;
  /** Base URL hosts reach the config server at, e.g. http://10.0.20.5:8081. */
  configServerURL: string;
  /** `host:port` hosts reach the event sink at. */
  eventSink: string;
  tokenTTLSeconds: number;
  /** A `talos.config.early=` arg (private CA), when the config server uses one. */
  earlyArg?: string;
  events?: EventRecorder;
  logger?: Logger;
  now?: () => Date;
}

/** The host has no current rendered config yet: provisioning it now would fetch nothing. */
export class TalosConfigNotReadyError extends ConfigNotReadyError {
  constructor(host: string, ref: string) {
    super(
      `BareMetalHost ${host} has no rendered Talos config yet (see TalosMachineConfig ${ref} condition Rendered)`,
    );
    this.name = 'TalosConfigNotReadyError';
  }
}

/** The token of a cleaning boot is derived as attempt 0 (install attempts count from 1). */
const CLEANING_ATTEMPT = 0;

export function talosProvisioningHooks(deps: TalosHooksDeps): ProvisioningHooks {
  const now = deps.now ?? (() => new Date());
  const logger = deps.logger ?? silentLogger;
  const base = deps.configServerURL.replace(/\/+$/, '');

  const argsFor = (host: Host, token: string) =>
    talosInstallArgs({
      configURL: `${base}/v1/config/${hostId(host.metadata)}?t=${token}`,
      eventSink: deps.eventSink,
      ...(deps.earlyArg ? { earlyArg: deps.earlyArg } : {}),
    });

  return {
    async installArgs(given: BareMetalHost, attempt: number): Promise<string[]> {
      const ref = { namespace: given.metadata.namespace ?? '', name: given.metadata.name ?? '' };
      let token = '';
      let minted = false;
      const written = await changeHostStatus(
        deps.store,
        ref,
        (host) => {
          if (!host.spec.talosConfigRef) return undefined;
          const talos = host.status?.talos;
          if (!talos?.configHash) throw new TalosConfigNotReadyError(ref.name, host.spec.talosConfigRef.name);
          const uid = host.metadata.uid ?? '';
          if (
            talos.tokenAttempt === attempt &&
            talos.tokenPurpose !== 'clean' &&
            talos.tokenHash &&
            talos.tokenExpiresAt
          ) {
            const again = deriveToken(deps.tokenKey, uid, attempt, talos.tokenExpiresAt);
            // A different hash means the key changed (or status was edited): mint afresh.
            if (hashToken(again) === talos.tokenHash) {
              token = again;
              return undefined;
            }
          }
          const expiresAt = timestamp(new Date(now().getTime() + deps.tokenTTLSeconds * 1000));
          token = deriveToken(deps.tokenKey, uid, attempt, expiresAt);
          minted = true;
          return {
            talos: {
              tokenHash: hashToken(token),
              tokenExpiresAt: expiresAt,
              tokenAttempt: attempt,
              tokenPurpose: 'install',
              configFetchedFrom: null,
              configFetchedAt: null,
              reportedAddresses: null,
            },
          };
        },
        now,
      );
      if (!written.spec.talosConfigRef) return [];
      if (minted) {
        logger.info(
          { host: hostId(written.metadata), attempt, expiresAt: written.status?.talos?.tokenExpiresAt },
          'config URL issued',
        );
      }
      return argsFor(written, token);
    },

    async cleaningArgs(given: BareMetalHost): Promise<string[] | undefined> {
      const ref = { namespace: given.metadata.namespace ?? '', name: given.metadata.name ?? '' };
      let token = '';
      const written = await changeHostStatus(
        deps.store,
        ref,
        (host) => {
          if (!host.spec.talosConfigRef) return undefined;
          const talos = host.status?.talos;
          const uid = host.metadata.uid ?? '';
          if (talos?.tokenPurpose === 'clean' && talos.tokenHash && talos.tokenExpiresAt) {
            const again = deriveToken(deps.tokenKey, uid, CLEANING_ATTEMPT, talos.tokenExpiresAt);
            if (hashToken(again) === talos.tokenHash) {
              token = again;
              return undefined;
            }
          }
          const expiresAt = timestamp(new Date(now().getTime() + deps.tokenTTLSeconds * 1000));
          token = deriveToken(deps.tokenKey, uid, CLEANING_ATTEMPT, expiresAt);
          return {
            talos: {
              tokenHash: hashToken(token),
              tokenExpiresAt: expiresAt,
              tokenAttempt: CLEANING_ATTEMPT,
              tokenPurpose: 'clean',
              configFetchedFrom: null,
              configFetchedAt: null,
              reportedAddresses: null,
            },
          };
        },
        now,
      );
      if (!written.spec.talosConfigRef) return undefined;
      // Talos wipes its system disk at boot, then fetches the (incomplete) config and reports.
      return ['talos.experimental.wipe=system', ...argsFor(written, token)];
    },

    async cleaningEnded(given: BareMetalHost): Promise<void> {
      await this.provisioningEnded(given);
    },

    async provisioningEnded(given: BareMetalHost): Promise<void> {
      const ref = { namespace: given.metadata.namespace ?? '', name: given.metadata.name ?? '' };
      await changeHostStatus(
        deps.store,
        ref,
        (host) =>
          host.status?.talos?.tokenHash || host.status?.talos?.tokenExpiresAt
            ? { talos: { tokenHash: null, tokenExpiresAt: null, tokenPurpose: null } }
            : undefined,
        now,
      ).catch((error: unknown) => {
        // A host being deleted may already be gone: nothing left to revoke.
        if ((error as { reason?: string }).reason !== 'NotFound') throw error;
      });
    },
  };
}
