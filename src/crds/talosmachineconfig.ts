// TalosMachineConfig: how to render the Talos machine config of every host that references it:
// a base config from a Secret (`talosctl gen config` output), the installer, the install disk, and
// strategic-merge patches per role and per host. The rendered configs are Secrets; no part of a
// config ever goes into this object's status.
import { z } from 'zod';
import {
  ageColumn,
  conditions,
  count,
  dateTime,
  devicePath,
  dnsSubdomain,
  healthColumns,
  objectMeta,
  type PrinterColumn,
  secretKeyReference,
  withRules,
} from './common.ts';

/** Talos version contract, such as v1.10: selects which documents and fields are rendered. */
export const TALOS_VERSION_PATTERN = /^v1\.[0-9]+$/;
export const INSTALLER_IMAGE_PATTERN =
  /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(\/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
export const CLUSTER_ENDPOINT_PATTERN =
  /^https:\/\/([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?\/?$/;

/** Condition types the TalosMachineConfig controller sets. */
export const TALOS_CONDITIONS = {
  /** True when every referencing host has a Secret rendered from the current generation. */
  rendered: 'Rendered',
} as const;

const patch = withRules(
  z
    .strictObject({
      inline: z
        .string()
        .min(1)
        .max(262144)
        .optional()
        .describe('Strategic merge patch (YAML, may be multi-document).'),
      secretRef: secretKeyReference().optional().describe('Secret key holding a patch that carries secrets.'),
    })
    .describe('A Talos strategic merge patch.'),
  [
    {
      rule: 'has(self.inline) != has(self.secretRef)',
      message: 'exactly one of inline or secretRef must be set',
      holds: (p) => (p.inline !== undefined) !== (p.secretRef !== undefined),
    },
  ],
);
const patches = () => z.array(patch).max(32);

const installDiskSelector = z
  .strictObject({
    size: z.string().max(64).optional().describe('Size matcher such as ">= 100GB" or "<= 2TB".'),
    name: z.string().max(256).optional(),
    model: z.string().max(256).optional().describe('Glob matched against the disk model.'),
    serial: z.string().max(256).optional(),
    modalias: z.string().max(256).optional(),
    uuid: z.string().max(256).optional(),
    wwid: z.string().max(256).optional(),
    type: z.enum(['ssd', 'hdd', 'nvme', 'sd']).optional(),
    busPath: z.string().max(256).optional(),
  })
  .refine((s) => Object.keys(s).length >= 1, 'must have at least 1 field')
  .meta({ minProperties: 1 })
  .describe('Talos install disk selector; the first matching disk is used.');

export const talosMachineConfigSpec = withRules(
  z.strictObject({
    talosVersion: z
      .string()
      .max(16)
      .regex(TALOS_VERSION_PATTERN, 'must be a Talos version contract such as v1.10')
      .describe('Talos version contract (v1.N): which config documents and fields to render.'),
    kubernetesVersion: z
      .string()
      .max(32)
      .regex(/^v?[0-9]+\.[0-9]+\.[0-9]+$/, 'must be a Kubernetes version such as v1.33.3')
      .optional(),
    clusterName: z
      .string()
      .min(1)
      .max(63)
      .optional()
      .describe('Expected cluster name; checked against the base config.'),
    clusterEndpoint: z
      .string()
      .max(512)
      .regex(CLUSTER_ENDPOINT_PATTERN, 'must be an https URL such as https://10.0.20.100:6443')
      .describe('Kubernetes API endpoint (cluster.controlPlane.endpoint).'),
    baseConfigSecretRef: z
      .strictObject({
        name: dnsSubdomain().describe('Secret holding `talosctl gen config` output.'),
        controlplaneKey: z.string().min(1).max(253).default('controlplane.yaml'),
        workerKey: z.string().min(1).max(253).default('worker.yaml'),
      })
      .describe('Base configs per role.'),
    installerImage: z
      .string()
      .max(512)
      .regex(
        INSTALLER_IMAGE_PATTERN,
        'must be an image reference such as ghcr.io/siderolabs/installer:v1.10.6',
      )
      .describe('Talos installer image (an Image Factory image when extensions or kernel args are needed).'),
    installDisk: devicePath()
      .optional()
      .describe('Install disk path; exactly one of installDisk or installDiskSelector.'),
    installDiskSelector: installDiskSelector.optional(),
    wipe: z.boolean().default(false).describe('Wipe the install disk before installing.'),
    patches: z
      .strictObject({
        all: patches().optional(),
        controlplane: patches().optional(),
        worker: patches().optional(),
      })
      .optional()
      .describe('Patches per role, applied in order: all, then the role of the host.'),
    hostPatches: z
      .array(
        z.strictObject({
          host: dnsSubdomain().describe('Name of a BareMetalHost in the same namespace.'),
          patches: patches(),
        }),
      )
      .max(1024)
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['host'] })
      .optional()
      .describe(
        'Patches for single hosts, applied after the role patches and the typed network/install documents of the host.',
      ),
  }),
  [
    {
      rule: 'has(self.installDisk) != has(self.installDiskSelector)',
      message: 'exactly one of installDisk or installDiskSelector must be set',
      holds: (s) => (s.installDisk !== undefined) !== (s.installDiskSelector !== undefined),
    },
  ],
);

export const talosMachineConfigStatus = z.strictObject({
  observedGeneration: count().optional(),
  hosts: z
    .array(
      z.strictObject({
        host: z.string().max(253).describe('BareMetalHost name.'),
        secretName: z.string().max(253).describe('Secret holding the rendered config.'),
        observedGeneration: count()
          .optional()
          .describe('Generation of this object the Secret was rendered from.'),
        lastRenderTime: dateTime().optional(),
      }),
    )
    .max(1024)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['host'] })
    .optional(),
  conditions: conditions().optional(),
});

export const talosMachineConfig = z.strictObject({
  apiVersion: z.literal('metalbox.io/v1alpha1'),
  kind: z.literal('TalosMachineConfig'),
  metadata: objectMeta,
  spec: talosMachineConfigSpec,
  status: talosMachineConfigStatus.optional(),
});

export type TalosMachineConfig = z.infer<typeof talosMachineConfig>;
export type TalosMachineConfigSpec = z.infer<typeof talosMachineConfigSpec>;
export type TalosMachineConfigStatus = z.infer<typeof talosMachineConfigStatus>;
export type TalosPatch = z.infer<typeof patch>;

export const talosMachineConfigColumns: PrinterColumn[] = [
  { name: 'Talos', type: 'string', jsonPath: '.spec.talosVersion', description: 'Talos version contract' },
  { name: 'Endpoint', type: 'string', jsonPath: '.spec.clusterEndpoint' },
  { name: 'Installer', type: 'string', jsonPath: '.spec.installerImage', priority: 1 },
  { name: 'Rendered', type: 'string', jsonPath: '.status.conditions[?(@.type=="Rendered")].status' },
  ...healthColumns,
  ageColumn,
];
