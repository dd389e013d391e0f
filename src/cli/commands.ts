// The one list of metalbox subcommands. Each is loaded lazily so `metalbox --help` stays fast and a
// subcommand's dependencies (gRPC, client-node, ...) load only when it runs.
export interface Subcommand {
  name: string;
  summary: string;
  /** Runs the subcommand with its own arguments; resolves to the process exit code. */
  load: () => Promise<{ run: (args: string[]) => Promise<number> }>;
}

export const subcommands: Subcommand[] = [
  {
    name: 'controller',
    summary:
      'run the controllers against a kube-apiserver, etcd or the embedded store (leader election, /metrics)',
    load: () => import('./controller.ts'),
  },
  {
    name: 'apply',
    summary: 'create or update objects from manifests in etcd or the embedded store (no kubectl needed)',
    load: () => import('./apply.ts'),
  },
  {
    name: 'get',
    summary: 'list objects with their printer columns (-o wide|yaml|json|name)',
    load: () => import('./get.ts'),
  },
  {
    name: 'describe',
    summary: 'show an object with its status, conditions and recent events',
    load: () => import('./describe.ts'),
  },
  {
    name: 'delete',
    summary: 'delete objects by kind and name or by manifest (-f)',
    load: () => import('./delete.ts'),
  },
  {
    name: 'watch',
    summary: 'print objects of a kind and every change to them as it happens',
    load: () => import('./watch.ts'),
  },
  {
    name: 'demo',
    summary: "provision the seed's five hosts against emulated BMCs and a real Matchbox pair",
    load: () => import('./demo.ts'),
  },
  {
    name: 'bmc',
    summary: 'check a BMC before writing a manifest: power state/on/off, reboot, boot-once, inventory',
    load: () => import('./bmc.ts'),
  },
  {
    name: 'import',
    summary: 'turn an existing Matchbox data directory into MatchboxProfile/MatchboxGroup manifests',
    load: () => import('./import.ts'),
  },
  {
    name: 'render',
    summary: 'print, offline, the exact Matchbox objects metalbox would write for manifests',
    load: () => import('./render.ts'),
  },
];
