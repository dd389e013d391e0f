// The `talos:` section of the controller's --config file.
//   talos:
//     configServer: {listen: "0.0.0.0:8081", advertiseURL: "http://10.0.20.5:8081", tls: {certFile, keyFile, caFile}}
//     eventSink: {listen: "0.0.0.0:4002", advertiseAddress: "10.0.20.5:4002"}
//     tokenTTLSeconds: 3600
//     tokenKeySecret: {namespace: metalbox-system, name: metalbox-talos-token-key}
import { z } from 'zod';

const listen = z
  .string()
  .regex(
    /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$/,
    'must be host:port, such as 0.0.0.0:8081 or [::]:8081',
  );

export const talosConfigSection = z
  .strictObject({
    configServer: z
      .strictObject({
        listen: listen.default('0.0.0.0:8081'),
        /** Base URL hosts fetch from; required when listening on all addresses. */
        advertiseURL: z.url({ protocol: /^https?$/ }).optional(),
        tls: z
          .strictObject({
            certFile: z.string().min(1),
            keyFile: z.string().min(1),
            /** The CA that signed certFile, handed to Talos as talos.config.early (Talos 1.11+). */
            caFile: z.string().min(1).optional(),
          })
          .optional(),
      })
      .default({ listen: '0.0.0.0:8081' }),
    eventSink: z
      .strictObject({
        listen: listen.default('0.0.0.0:4002'),
        /** host:port hosts send events to; required when listening on all addresses. */
        advertiseAddress: listen.optional(),
      })
      .default({ listen: '0.0.0.0:4002' }),
    tokenTTLSeconds: z
      .int()
      .min(60)
      .max(7 * 86_400)
      .default(3600),
    tokenKeySecret: z
      .strictObject({
        namespace: z.string().min(1).optional(),
        name: z.string().min(1).default('metalbox-talos-token-key'),
      })
      .default({ name: 'metalbox-talos-token-key' }),
    workers: z.int().min(1).max(64).default(2),
  })
  .describe('Talos config rendering, config server and event sink.');

export type TalosConfigSection = z.infer<typeof talosConfigSection>;

export function parseTalosConfig(section: unknown): TalosConfigSection {
  const result = talosConfigSection.safeParse(section ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `talos.${i.path.join('.')}: ${i.message}`);
  throw new Error(`invalid controller config: ${problems.join('; ')}`);
}

export function splitHostPort(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  return {
    host: value.slice(0, colon).replace(/^\[|\]$/g, '') || '0.0.0.0',
    port: Number(value.slice(colon + 1)),
  };
}

export const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '';
