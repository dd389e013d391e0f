// Where a host belongs when it is not in the middle of an operation, read from its status alone,
// so that a return from error or a re-registration never re-installs a provisioned host.
import type { BareMetalHostStatus, ProvisioningState } from '../../crds/baremetalhost.ts';
import { findCondition } from '../../runtime/conditions.ts';
import { CONDITIONS } from './power.ts';

export function isProvisioned(status: BareMetalHostStatus): boolean {
  return findCondition(status.conditions, CONDITIONS.provisioned)?.status === 'True';
}

/** provisioned, rescue or available. */
export function settledState(status: BareMetalHostStatus): ProvisioningState {
  if (status.provisioning?.bootTarget === 'rescue') return 'rescue';
  return isProvisioned(status) ? 'provisioned' : 'available';
}

/** After (re-)registration: resume an operation in flight, inspect if needed, else settle. */
export function afterRegistration(
  status: BareMetalHostStatus,
  needsInspection: boolean,
  deprovisioning: boolean,
): ProvisioningState {
  if (status.provisioning?.startedAt !== undefined) return 'provisioning';
  if (deprovisioning) return 'deprovisioning';
  if (needsInspection) return 'inspecting';
  return settledState(status);
}
