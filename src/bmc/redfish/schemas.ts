// The Redfish resources metalbox reads, as zod schemas: only the fields used, every one optional or
// nullable where real BMCs are known to omit it or send null. Unknown fields are ignored.
import { z } from 'zod';

const text = z.string().nullish();
const count = z.number().nullish();

export const odataLink = z.object({ '@odata.id': z.string() });
export type ODataLink = z.infer<typeof odataLink>;

export const serviceRoot = z.object({
  RedfishVersion: text,
  Vendor: text,
  Product: text,
  Oem: z.record(z.string(), z.unknown()).nullish(),
  Systems: odataLink.nullish(),
  SessionService: odataLink.nullish(),
  Links: z.object({ Sessions: odataLink.nullish() }).nullish(),
});
export type ServiceRoot = z.infer<typeof serviceRoot>;

export const collection = z.object({
  Members: z.array(odataLink),
  'Members@odata.nextLink': text,
});
export type Collection = z.infer<typeof collection>;

export const resetAction = z.object({
  target: z.string(),
  'ResetType@Redfish.AllowableValues': z.array(z.string()).nullish(),
  '@Redfish.ActionInfo': text,
});

export const computerSystem = z.object({
  '@odata.id': text,
  '@odata.etag': text,
  Id: text,
  Name: text,
  UUID: text,
  Manufacturer: text,
  Model: text,
  SerialNumber: text,
  PowerState: text,
  Boot: z
    .object({
      BootSourceOverrideEnabled: text,
      'BootSourceOverrideEnabled@Redfish.AllowableValues': z.array(z.string()).nullish(),
      BootSourceOverrideTarget: text,
      'BootSourceOverrideTarget@Redfish.AllowableValues': z.array(z.string()).nullish(),
      BootSourceOverrideMode: text,
      'BootSourceOverrideMode@Redfish.AllowableValues': z.array(z.string()).nullish(),
    })
    .nullish(),
  ProcessorSummary: z.object({ Count: count, Model: text, LogicalProcessorCount: count }).nullish(),
  MemorySummary: z.object({ TotalSystemMemoryGiB: count }).nullish(),
  Processors: odataLink.nullish(),
  Memory: odataLink.nullish(),
  EthernetInterfaces: odataLink.nullish(),
  Storage: odataLink.nullish(),
  SimpleStorage: odataLink.nullish(),
  Actions: z.object({ '#ComputerSystem.Reset': resetAction.nullish() }).nullish(),
});
export type ComputerSystem = z.infer<typeof computerSystem>;

export const actionInfo = z.object({
  Parameters: z
    .array(z.object({ Name: z.string(), AllowableValues: z.array(z.string()).nullish() }))
    .nullish(),
});

export const ethernetInterface = z.object({
  Id: text,
  Name: text,
  MACAddress: text,
  PermanentMACAddress: text,
  LinkStatus: text,
  SpeedMbps: count,
  InterfaceEnabled: z.boolean().nullish(),
});

export const processor = z.object({ Model: text, ProcessorType: text });

export const memoryModule = z.object({ CapacityMiB: count });

export const storage = z.object({ Drives: z.array(odataLink).nullish() });

export const drive = z.object({ Name: text, CapacityBytes: count, Model: text, SerialNumber: text });

export const simpleStorage = z.object({
  Devices: z
    .array(z.object({ Name: text, Model: text, CapacityBytes: count, Status: z.unknown().optional() }))
    .nullish(),
});

export const task = z.object({
  TaskState: text,
  TaskStatus: text,
  Messages: z.array(z.object({ Message: text, MessageId: text })).nullish(),
});

/** The standard error envelope; used only to make error messages readable. */
export const redfishError = z.object({
  error: z.object({
    code: text,
    message: text,
    '@Message.ExtendedInfo': z.array(z.object({ Message: text, MessageId: text })).nullish(),
  }),
});
