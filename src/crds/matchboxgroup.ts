// MatchboxGroup: one Matchbox Group (which machines get which profile), mirrored into every
// configured Matchbox endpoint by the group sync controller.
import { z } from 'zod';
import {
  ageColumn,
  healthColumns,
  localObjectReference,
  MAC_PATTERN,
  matchboxSyncStatus,
  objectMeta,
  type PrinterColumn,
  withRules,
} from './common.ts';

// Matchbox compares selector values byte for byte with the request's labels, and only the HTTP
// side normalises `mac`; so the sync controller sends normalizeMac(selector.mac), and the value
// here may be in either MAC form.
const selector = withRules(
  z
    .record(z.string().min(1).max(63), z.string().max(256))
    .refine((s) => Object.keys(s).length <= 16, 'must have at most 16 entries')
    .meta({ maxProperties: 16 })
    .describe(
      'Labels a request must carry, all of them, to match (reserved: mac, uuid, hostname, serial). Empty = default group.',
    ),
  [
    {
      // Index syntax: the apiserver's cost estimate loses maxLength on `self.mac` of a map.
      rule: `!('mac' in self) || self['mac'].matches('${MAC_PATTERN.source}')`,
      message: 'selector mac must be a MAC address such as aa:bb:cc:dd:ee:ff (colon or hyphen form)',
      holds: (s) => s.mac === undefined || MAC_PATTERN.test(s.mac),
    },
  ],
);

export const matchboxGroupSpec = z.strictObject({
  displayName: z.string().max(256).optional().describe('Matchbox group `name` (for people).'),
  profileRef: localObjectReference('MatchboxProfile').describe('Profile served to matching machines.'),
  selector: selector.optional(),
  metadata: z
    .record(z.string(), z.unknown())
    .meta({ 'x-kubernetes-preserve-unknown-fields': true })
    .optional()
    .describe('Free-form data available to Matchbox templates.'),
});

export const matchboxGroupStatus = matchboxSyncStatus();

export const matchboxGroup = z.strictObject({
  apiVersion: z.literal('metalbox.io/v1alpha1'),
  kind: z.literal('MatchboxGroup'),
  metadata: objectMeta,
  spec: matchboxGroupSpec,
  status: matchboxGroupStatus.optional(),
});

export type MatchboxGroup = z.infer<typeof matchboxGroup>;
export type MatchboxGroupSpec = z.infer<typeof matchboxGroupSpec>;
export type MatchboxGroupStatus = z.infer<typeof matchboxGroupStatus>;

export const matchboxGroupColumns: PrinterColumn[] = [
  { name: 'Profile', type: 'string', jsonPath: '.spec.profileRef.name' },
  { name: 'MAC', type: 'string', jsonPath: '.spec.selector.mac' },
  { name: 'Synced', type: 'string', jsonPath: '.status.conditions[?(@.type=="Synced")].status' },
  ...healthColumns,
  ageColumn,
];
