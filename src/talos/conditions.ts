// Host conditions the Talos side sets beyond the BareMetalHost contract's INSTALL_CONDITIONS.
export const TALOS_HOST_CONDITIONS = {
  /** True when a used config token was presented again: someone else may hold the URL. */
  configRefetched: 'ConfigRefetched',
} as const;
