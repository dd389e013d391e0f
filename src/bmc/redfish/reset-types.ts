// Which ComputerSystem.Reset type to send for an intent, chosen from what the System advertises
// (ResetType@Redfish.AllowableValues or its ActionInfo). BMCs differ: iDRAC 9, for one, has no
// GracefulRestart, and some only offer PushPowerButton for an ACPI shutdown.

export type ResetIntent = 'on' | 'forceOff' | 'gracefulOff' | 'gracefulRestart' | 'forceRestart';

const preferences: Record<ResetIntent, readonly string[]> = {
  on: ['On', 'ForceOn'],
  forceOff: ['ForceOff'],
  // A short press of the power button is an ACPI shutdown request on practically every board.
  gracefulOff: ['GracefulShutdown', 'PushPowerButton'],
  gracefulRestart: ['GracefulRestart'],
  forceRestart: ['ForceRestart', 'PowerCycle'],
};

/**
 * The reset type for an intent, or undefined when the System advertises none that fits. A System that
 * advertises nothing is assumed to take the standard value (the first preference), as the spec defaults.
 */
export function chooseResetType(
  intent: ResetIntent,
  allowed: readonly string[] | undefined,
): string | undefined {
  const wanted = preferences[intent];
  if (allowed === undefined || allowed.length === 0) return wanted[0];
  return wanted.find((type) => allowed.includes(type));
}
