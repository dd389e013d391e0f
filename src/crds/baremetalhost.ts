// BareMetalHost: one physical server, its BMC, how it boots and what it should become.
// Field names follow Metal3's BareMetalHost where the meaning is the same (online, bootMACAddress,
// bmc.*, bootMode, status.provisioning.state, poweredOn, operationHistory, errorType/Count).
import { z } from 'zod';
import {
  ageColumn,
  cidr,
  conditions,
  count,
  dateTime,
  devicePath,
  dnsSubdomain,
  healthColumns,
  ipAddress,
  linkName,
  localObjectReference,
  macAddress,
  objectMeta,
  type PrinterColumn,
  withRules,
} from './common.ts';

export const BMC_SCHEMES = ['ipmi', 'redfish', 'redfish+http', 'redfish+https'] as const;
export type BmcScheme = (typeof BMC_SCHEMES)[number];
/** scheme://host[:port][/path]; host is a DNS name, an IPv4 address or a bracketed IPv6 address. */
export const BMC_ADDRESS_PATTERN =
  /^(ipmi|redfish|redfish\+http|redfish\+https):\/\/([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(\/[!-~]*)?$/;

/** Annotations a person sets on a host to ask for something once, or to stop the controller. */
export const BMH_ANNOTATIONS = {
  /** Any value: the controller does nothing for this host (no power, no Matchbox, no status). */
  paused: 'metalbox.io/paused',
  /** Any value: stop managing power and boot; keep the host and its status (e.g. while moving it). */
  detached: 'metalbox.io/detached',
  /** One-shot: power-cycle the host; the controller removes the annotation once done. Value "hard" or "soft". */
  reboot: 'metalbox.io/reboot',
  /** One-shot: read the hardware inventory again; removed once done. */
  inspect: 'metalbox.io/inspect',
} as const;

export const BMH_FINALIZER = 'metalbox.io/baremetalhost';

export const PROVISIONING_STATES = [
  'registering',
  'inspecting',
  'available',
  'provisioning',
  'provisioned',
  'deprovisioning',
  'rescue',
  'error',
  'deleting',
] as const;
export type ProvisioningState = (typeof PROVISIONING_STATES)[number];

export const ERROR_TYPES = [
  'registration error',
  'inspection error',
  'provisioning error',
  'deprovisioning error',
  'power management error',
  'boot configuration error',
] as const;
export type HostErrorType = (typeof ERROR_TYPES)[number];

export const BOOT_TARGETS = ['install', 'disk', 'rescue'] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];

export const BOND_MODES = [
  'balance-rr',
  'active-backup',
  'balance-xor',
  'broadcast',
  '802.3ad',
  'balance-tlb',
  'balance-alb',
] as const;

// ---------------------------------------------------------------------------------------------
// spec

const bmc = z
  .strictObject({
    address: z
      .string()
      .max(2048)
      .regex(
        BMC_ADDRESS_PATTERN,
        'must be a BMC URL such as redfish://10.0.10.101/redfish/v1/Systems/1 or ipmi://10.0.10.111:623',
      )
      .describe(
        'BMC URL; the scheme selects the driver: redfish:// (https), redfish+http://, redfish+https://, ipmi:// (IPMI v2 lanplus).',
      ),
    credentialsName: dnsSubdomain().describe(
      'Name of a Secret in the same namespace with keys `username` and `password`.',
    ),
    disableCertificateVerification: z
      .boolean()
      .default(false)
      .describe(
        'Accept any TLS certificate from a Redfish BMC. Only for lab BMCs with self-signed certificates.',
      ),
  })
  .describe('How to reach the baseboard management controller.');

const bondMember = withRules(
  z.strictObject({
    mac: macAddress().optional().describe('Permanent MAC address of the member NIC.'),
    busPath: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[!-~]+$/, 'must be a bus path glob without spaces, such as 0*:*:00.0')
      .optional()
      .describe('PCI bus path of the member NIC; globs allowed, such as 0*:*:00.0.'),
  }),
  [
    {
      rule: 'has(self.mac) != has(self.busPath)',
      message: 'exactly one of mac or busPath must be set',
      holds: (m) => (m.mac !== undefined) !== (m.busPath !== undefined),
    },
  ],
);

const bond = z
  .strictObject({
    name: linkName().default('bond0').describe('Name of the bond link.'),
    mode: z.enum(BOND_MODES).default('802.3ad'),
    lacpRate: z.enum(['slow', 'fast']).optional().describe('LACP rate (802.3ad only).'),
    xmitHashPolicy: z.enum(['layer2', 'layer2+3', 'layer3+4', 'encap2+3', 'encap3+4']).optional(),
    miimon: z.int().min(0).max(60000).optional().describe('Link monitoring interval in milliseconds.'),
    mtu: z.int().min(68).max(65535).optional(),
    members: z.array(bondMember).min(1).max(8).describe('Member NICs, each by MAC address or bus path.'),
  })
  .describe('Link aggregation over several NICs.');

const vlan = z
  .strictObject({
    id: z.int().min(1).max(4094).describe('802.1Q VLAN id.'),
    parent: linkName().optional().describe('Link the VLAN rides on; defaults to the bond.'),
    mtu: z.int().min(68).max(65535).optional(),
  })
  .describe('A tagged VLAN; addresses and routes apply to it when set.');

const route = z.strictObject({
  network: cidr().describe('Destination, such as 0.0.0.0/0 for the default route.'),
  gateway: ipAddress().optional(),
  metric: z.int().min(0).max(4294967295).optional(),
});

const network = withRules(
  z
    .strictObject({
      hostname: dnsSubdomain().optional(),
      bond: bond.optional(),
      vlan: vlan.optional(),
      addresses: z
        .array(cidr())
        .max(16)
        .optional()
        .describe('Static addresses with prefix length; none means DHCP.'),
      routes: z.array(route).max(32).optional(),
      nameservers: z.array(ipAddress()).max(8).optional(),
    })
    .describe(
      'Static network of the installed OS. Addresses and routes apply to the VLAN when set, else to the bond when set, else to the NIC with bootMACAddress.',
    ),
  [
    {
      rule: '!has(self.vlan) || has(self.vlan.parent) || has(self.bond)',
      message: 'vlan.parent is required when no bond is defined',
      fieldPath: '.vlan.parent',
      reason: 'FieldValueRequired',
      holds: (n) => n.vlan === undefined || n.vlan.parent !== undefined || n.bond !== undefined,
    },
  ],
);

export const BOOT_FROM_DISK_METHODS = [
  'bmc',
  'ipxe-exit',
  'ipxe-exit-error',
  'ipxe-sanboot',
  'http-404',
] as const;
export type BootFromDiskMethod = (typeof BOOT_FROM_DISK_METHODS)[number];

export const bareMetalHostSpec = withRules(
  z.strictObject({
    online: z.boolean().describe('Desired power state.'),
    bootMACAddress: macAddress()
      .optional()
      .describe(
        'MAC address of the NIC that network-boots. Either form and any case; consumers compare the lowercase colon form. When empty, inspection records it if the BMC inventory shows exactly one candidate.',
      ),
    bmc,
    bootMode: z
      .enum(['UEFI', 'legacy'])
      .optional()
      .describe(
        'Firmware boot mode to set with boot overrides. Absent: the BMC boot mode is left as it is (metalbox never changes it unasked; on iDRAC a change is a BIOS job).',
      ),
    bootFromDiskMethod: z
      .enum(BOOT_FROM_DISK_METHODS)
      .optional()
      .describe(
        'How an installed host that network-boots is sent to its disk (docs/boot-from-disk.md). bmc: after the install the BMC boot device is set to the disk (persistent) and a network boot still gets ipxe-exit; ipxe-exit: iPXE exit (falls through on BIOS; OVMF stops in its menu); ipxe-exit-error: iPXE exit 1; ipxe-sanboot: sanboot the first BIOS disk; http-404: no Matchbox answer at all. Default: ipxe-exit for bootMode legacy, bmc otherwise.',
      ),
    role: z.enum(['controlplane', 'worker']),
    profileRef: localObjectReference('MatchboxProfile')
      .optional()
      .describe('MatchboxProfile booted to install the host (bootTarget install).'),
    talosConfigRef: localObjectReference('TalosMachineConfig')
      .optional()
      .describe('TalosMachineConfig that renders this host machine config.'),
    bootTarget: z
      .enum(BOOT_TARGETS)
      .default('install')
      .describe(
        'install: network-boot profileRef until installed; disk: boot the installed OS; rescue: network-boot rescueProfileRef.',
      ),
    rescueProfileRef: localObjectReference('MatchboxProfile')
      .optional()
      .describe('MatchboxProfile booted when bootTarget is rescue.'),
    powerPolicy: z
      .enum(['enforce', 'observe'])
      .default('enforce')
      .describe('enforce: re-assert `online` when power drifts; observe: only report drift.'),
    inspectionMode: z
      .enum(['bmc', 'disabled'])
      .default('bmc')
      .describe('bmc: read the hardware inventory from the BMC when registering; disabled: skip it.'),
    network: network.optional(),
    automatedCleaningMode: z
      .enum(['metadata', 'disabled'])
      .optional()
      .describe(
        'metadata (default): when the install is withdrawn, boot the install profile once with the OS wipe (Talos: talos.experimental.wipe=system) and wait for the machine to report it before powering off, so the old OS and its secrets are gone; disabled: power off only.',
      ),
    installDisk: devicePath()
      .optional()
      .describe('Install disk; overrides the one of the TalosMachineConfig.'),
    provisioningTimeoutSeconds: z
      .int()
      .min(1)
      .max(86400)
      .optional()
      .describe('How long provisioning may take before the host goes to error.'),
    description: z.string().max(1024).optional().describe('Free text for people, e.g. rack and slot.'),
  }),
  [
    {
      rule: "self.bootTarget != 'rescue' || has(self.rescueProfileRef)",
      message: 'rescueProfileRef is required when bootTarget is rescue',
      fieldPath: '.rescueProfileRef',
      reason: 'FieldValueRequired',
      holds: (s) => s.bootTarget !== 'rescue' || s.rescueProfileRef !== undefined,
    },
    {
      rule: "self.bootTarget != 'install' || has(self.profileRef)",
      message: 'profileRef is required when bootTarget is install',
      fieldPath: '.profileRef',
      reason: 'FieldValueRequired',
      holds: (s) => s.bootTarget !== 'install' || s.profileRef !== undefined,
    },
  ],
);

// ---------------------------------------------------------------------------------------------
// status

const operation = z.strictObject({ start: dateTime().optional(), end: dateTime().optional() });

const hardware = z
  .strictObject({
    manufacturer: z.string().max(256).optional(),
    model: z.string().max(256).optional(),
    serial: z.string().max(256).optional(),
    uuid: z.string().max(64).optional().describe('SMBIOS system UUID.'),
    biosVersion: z.string().max(256).optional(),
    cpu: z
      .strictObject({
        count: z.int().min(0).optional().describe('Logical CPUs.'),
        model: z.string().max(256).optional(),
        architecture: z.string().max(32).optional(),
      })
      .optional(),
    memoryGiB: z.number().min(0).optional(),
    nics: z
      .array(
        z.strictObject({
          name: z.string().max(256).optional(),
          mac: macAddress(),
          linkUp: z.boolean().optional(),
          speedMbps: z.int().min(0).optional(),
        }),
      )
      .max(64)
      .optional(),
    disks: z
      .array(
        z.strictObject({
          name: z.string().max(256),
          sizeBytes: z.int().min(0).optional(),
          model: z.string().max(256).optional(),
          serial: z.string().max(256).optional(),
          rotational: z.boolean().optional(),
        }),
      )
      .max(64)
      .optional(),
  })
  .describe('Inventory read from the BMC.');

export const bareMetalHostStatus = z.strictObject({
  observedGeneration: count().optional(),
  provisioning: z
    .strictObject({
      state: z.enum(PROVISIONING_STATES),
      bootTarget: z.enum(BOOT_TARGETS).optional().describe('Boot target the host was last set up for.'),
      profile: z
        .string()
        .max(253)
        .optional()
        .describe('Name of the MatchboxProfile the host currently boots.'),
      attempt: count()
        .optional()
        .describe('Provisioning attempts since the spec last changed; capped by the retry limit.'),
      startedAt: dateTime()
        .optional()
        .describe('When the current provisioning attempt started (for its timeout).'),
    })
    .optional(),
  talos: z
    .strictObject({
      configHash: z
        .string()
        .max(128)
        .optional()
        .describe('sha256 of the rendered machine config (never the config).'),
      tokenHash: z
        .string()
        .max(128)
        .optional()
        .describe('sha256 of the one-time config token of this attempt.'),
      tokenExpiresAt: dateTime().optional(),
      tokenAttempt: count().optional().describe('The provisioning attempt the token was minted for.'),
      tokenPurpose: z
        .enum(['install', 'clean'])
        .optional()
        .describe(
          'install: the token fetches the machine config; clean: only what the wipe boot reports with.',
        ),
      configFetchedFrom: z
        .string()
        .max(64)
        .optional()
        .describe('Address that fetched the config with the token.'),
      configFetchedAt: dateTime().optional(),
      reportedAddresses: z
        .array(z.string().max(64))
        .max(16)
        .optional()
        .describe(
          'Static addresses the machine reported from its fetch address (AddressEvent); events are accepted from these.',
        ),
    })
    .optional()
    .describe('Talos config delivery of the current provisioning attempt.'),
  operationalStatus: z
    .enum(['OK', 'delayed', 'detached', 'error'])
    .optional()
    .describe('delayed: waiting for a provisioning slot; detached: the detached annotation is set.'),
  poweredOn: z.boolean().optional(),
  goodCredentials: z
    .strictObject({ name: z.string().max(253), resourceVersion: z.string().max(64) })
    .optional()
    .describe('The credentials Secret version last accepted by the BMC, to detect rotation.'),
  hardware: hardware.optional(),
  conditions: conditions().optional(),
  operationHistory: z
    .strictObject({
      register: operation.optional(),
      inspect: operation.optional(),
      provision: operation.optional(),
      deprovision: operation.optional(),
    })
    .optional(),
  errorType: z.enum(ERROR_TYPES).optional(),
  errorMessage: z.string().max(4096).optional(),
  errorCount: count().optional().describe('Consecutive failures; reset on success; drives the backoff.'),
  errorRetryAt: dateTime()
    .optional()
    .describe(
      'When the failed operation is retried (sooner if the spec or the credentials change); in status so that the backoff survives a controller restart.',
    ),
  lastObservedBoot: z
    .strictObject({
      time: dateTime(),
      phase: z.enum(['pxe', 'config-fetched', 'installing', 'installed', 'booted']),
      message: z.string().max(1024).optional(),
    })
    .optional()
    .describe('Latest sign of life from the boot path (Matchbox, config server, Talos events).'),
});

// ---------------------------------------------------------------------------------------------

export const bareMetalHost = z.strictObject({
  apiVersion: z.literal('metalbox.io/v1alpha1'),
  kind: z.literal('BareMetalHost'),
  metadata: objectMeta,
  spec: bareMetalHostSpec,
  status: bareMetalHostStatus.optional(),
});

export type BareMetalHost = z.infer<typeof bareMetalHost>;
export type BareMetalHostSpec = z.infer<typeof bareMetalHostSpec>;
export type BareMetalHostStatus = z.infer<typeof bareMetalHostStatus>;
export type HostNetwork = z.infer<typeof network>;
export type HostHardware = z.infer<typeof hardware>;

export const bareMetalHostColumns: PrinterColumn[] = [
  {
    name: 'State',
    type: 'string',
    jsonPath: '.status.provisioning.state',
    description: 'Provisioning state',
  },
  { name: 'Online', type: 'boolean', jsonPath: '.spec.online', description: 'Desired power state' },
  { name: 'Powered', type: 'boolean', jsonPath: '.status.poweredOn', description: 'Observed power state' },
  { name: 'BMC', type: 'string', jsonPath: '.spec.bmc.address' },
  { name: 'MAC', type: 'string', jsonPath: '.spec.bootMACAddress', description: 'Boot MAC address' },
  { name: 'Error', type: 'string', jsonPath: '.status.errorType' },
  ...healthColumns,
  {
    name: 'Paused',
    type: 'string',
    // The apiserver's JSONPath wants the dots of the key escaped, even between brackets.
    jsonPath: `.metadata.annotations['${BMH_ANNOTATIONS.paused.replaceAll('.', '\\.')}']`,
    description: 'The paused annotation: the controller does nothing (and writes nothing) for this host',
  },
  ageColumn,
];
