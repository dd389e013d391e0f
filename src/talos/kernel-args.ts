// Kernel arguments the install boot carries for Talos (talos.md §4): where to fetch the config and
// where to send events. `talos.config.early` carries a TrustedRootsConfig (zstd, then base64) when
// the config server uses a private CA, so Talos trusts it before the fetch (Talos 1.11+).
import { zstdCompressSync } from 'node:zlib';
import { stringifyDocument } from './yaml-stream.ts';

export function trustedRootsEarlyArg(caPem: string): string {
  const doc = stringifyDocument({
    apiVersion: 'v1alpha1',
    kind: 'TrustedRootsConfig',
    name: 'metalbox-config-server',
    certificates: caPem.trim(),
  });
  return `talos.config.early=${zstdCompressSync(Buffer.from(doc)).toString('base64')}`;
}

export interface TalosArgsInput {
  configURL: string;
  eventSink: string;
  earlyArg?: string;
}

export function talosInstallArgs(input: TalosArgsInput): string[] {
  return [
    // Required for talos.config to be read on bare metal; the profile usually has it already.
    'talos.platform=metal',
    ...(input.earlyArg ? [input.earlyArg] : []),
    `talos.config=${input.configURL}`,
    `talos.events.sink=${input.eventSink}`,
  ];
}
