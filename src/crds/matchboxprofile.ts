// MatchboxProfile: one Matchbox Profile (what a matched machine boots), mirrored into every
// configured Matchbox endpoint by the profile sync controller.
import { z } from 'zod';
import {
  ageColumn,
  healthColumns,
  matchboxSyncStatus,
  objectMeta,
  type PrinterColumn,
  secretKeyReference,
  withRules,
} from './common.ts';

/** A kernel argument is one token: iPXE and GRUB join args with spaces. */
export const KERNEL_ARG_PATTERN = /^[^\t\n\v\f\r ]+$/;

const genericConfig = withRules(
  z
    .strictObject({
      inline: z.string().max(524288).optional().describe('Template text served at /generic.'),
      secretRef: secretKeyReference()
        .optional()
        .describe('Secret key holding the template, for content that must not sit in the object.'),
    })
    .describe('Matchbox generic config (served at /generic, rendered as a Go text/template).'),
  [
    {
      rule: 'has(self.inline) != has(self.secretRef)',
      message: 'exactly one of inline or secretRef must be set',
      holds: (g) => (g.inline !== undefined) !== (g.secretRef !== undefined),
    },
  ],
);

export const matchboxProfileSpec = withRules(
  z.strictObject({
    displayName: z.string().max(256).optional().describe('Matchbox profile `name` (for people).'),
    kernel: z
      .string()
      .min(1)
      .max(2048)
      .optional()
      .describe('Kernel URL or Matchbox asset path such as /assets/vmlinuz.'),
    initrd: z
      .array(z.string().min(1).max(2048))
      .max(16)
      .optional()
      .describe('Initrd URLs or asset paths, in order.'),
    args: z
      .array(
        z
          .string()
          .min(1)
          .max(4096)
          .regex(KERNEL_ARG_PATTERN, 'must be one kernel argument without whitespace'),
      )
      .max(256)
      .optional()
      .describe('Kernel command line arguments, in order.'),
    genericConfig: genericConfig.optional(),
  }),
  [
    {
      rule: 'has(self.kernel) || (!has(self.initrd) && !has(self.args))',
      message: 'initrd and args require kernel',
      fieldPath: '.kernel',
      reason: 'FieldValueRequired',
      holds: (s) => s.kernel !== undefined || (s.initrd === undefined && s.args === undefined),
    },
  ],
);

export const matchboxProfileStatus = matchboxSyncStatus();

export const matchboxProfile = z.strictObject({
  apiVersion: z.literal('metalbox.io/v1alpha1'),
  kind: z.literal('MatchboxProfile'),
  metadata: objectMeta,
  spec: matchboxProfileSpec,
  status: matchboxProfileStatus.optional(),
});

export type MatchboxProfile = z.infer<typeof matchboxProfile>;
export type MatchboxProfileSpec = z.infer<typeof matchboxProfileSpec>;
export type MatchboxProfileStatus = z.infer<typeof matchboxProfileStatus>;

export const matchboxProfileColumns: PrinterColumn[] = [
  { name: 'Kernel', type: 'string', jsonPath: '.spec.kernel' },
  { name: 'Synced', type: 'string', jsonPath: '.status.conditions[?(@.type=="Synced")].status' },
  ...healthColumns,
  ageColumn,
];
