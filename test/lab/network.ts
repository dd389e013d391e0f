// The boot lab's network: one /24 on a bridge inside a network namespace made for this run, with
// the seed's management nodes (mgmt-01, mgmt-02: each its own namespace, Matchbox and keepalived)
// and the test process itself (the metalbox controller, as on the management network) on veth
// links into the bridge. No uplink and no route out: traffic stays between loopback and the
// namespaces made here. Deleting the namespaces removes every link, including the host's veth end.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LabNetwork {
  /** The provisioning segment's namespace: bridge, "pfSense" DHCP, libvirtd and the VMs. */
  labNs: string;
  /** mgmt-01 and mgmt-02's namespaces. */
  mgmtNs: [string, string];
  bridge: 'br0';
  /** 10.77.N.0/24 */
  prefix: string;
  /** The router (the pfSense role: DHCP, gateway, DNS option) on the bridge. */
  routerAddress: string;
  /** The test process's own address on the segment (the controller's config server and event sink). */
  hostAddress: string;
  mgmtAddresses: [string, string];
  /** The keepalived VIP in front of the Matchbox pair. */
  vip: string;
  mgmtInterface: 'mgmt0';
  /** `ip netns exec <ns> …` as a command line for startProcess. */
  inNs(ns: string, command: string, args: string[]): { command: string; args: string[] };
  run(ns: string, command: string, args: string[]): string;
  destroy(): void;
}

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** Every namespace this process made, deleted on exit even when a test crashes. */
const made = new Set<string>();
let hookInstalled = false;
function deleteOnExit(ns: string): void {
  made.add(ns);
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => {
    for (const name of made) deleteNamespace(name);
  });
}

/** Kills whatever still runs in a namespace (qemu under a libvirtd that died), then deletes it. */
function deleteNamespace(name: string): void {
  try {
    for (const pid of ip(['netns', 'pids', name]).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    ip(['netns', 'del', name]);
  } catch {
    // never made, or already gone
  }
}

/** A 10.77.N.0/24 no interface of this machine uses yet (two lab runs at once get different ones). */
function freePrefix(): string {
  const used = ip(['-4', '-o', 'addr', 'show']);
  for (let i = 0; i < 64; i++) {
    const n = 1 + (randomBytes(1)[0]! % 250);
    if (!used.includes(`10.77.${n}.`)) return `10.77.${n}`;
  }
  throw new Error('boot lab: no free 10.77.N.0/24 on this machine');
}

/** Marks which process made a lab's namespaces, so a later run can sweep those of a killed one. */
const ownerFile = (id: string) => join(tmpdir(), `metalbox-lab-${id}.owner`);

/**
 * Deletes the namespaces (and kills what runs in them) of earlier lab runs whose process died
 * without cleaning up (SIGKILL): only names this harness makes, and only when their owner is gone.
 */
function sweepAbandonedLabs(): void {
  const names = ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => /^mb(lab|mg[12])-[0-9a-f]{6}$/.test(n));
  for (const name of names) {
    const id = name.slice(-6);
    let owner = Number.NaN;
    try {
      owner = Number(readFileSync(ownerFile(id), 'utf8'));
    } catch {
      // no owner file: made by a run that wrote none, treat as abandoned
    }
    if (Number.isInteger(owner) && isAlive(owner)) continue;
    deleteNamespace(name);
    rmSync(ownerFile(id), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function createLabNetwork(): LabNetwork {
  sweepAbandonedLabs();
  const id = randomBytes(3).toString('hex');
  writeFileSync(ownerFile(id), String(process.pid));
  const labNs = `mblab-${id}`;
  const mgmtNs: [string, string] = [`mbmg1-${id}`, `mbmg2-${id}`];
  const prefix = freePrefix();
  const net = {
    routerAddress: `${prefix}.1`,
    hostAddress: `${prefix}.2`,
    vip: `${prefix}.10`,
    mgmtAddresses: [`${prefix}.11`, `${prefix}.12`] as [string, string],
  };
  const hostLink = `mbh-${id}`;
  const destroy = () => {
    for (const ns of [labNs, ...mgmtNs]) {
      deleteNamespace(ns);
      made.delete(ns);
    }
    rmSync(ownerFile(id), { force: true });
  };
  try {
    for (const ns of [labNs, ...mgmtNs]) {
      ip(['netns', 'add', ns]);
      deleteOnExit(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    ip(['-n', labNs, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    ip(['-n', labNs, 'addr', 'add', `${net.routerAddress}/24`, 'dev', 'br0']);
    // IPv6 router advertisements on the segment save iPXE ~17 s of autoconfiguration per boot.
    ip(['-n', labNs, 'addr', 'add', 'fd77::1/64', 'dev', 'br0', 'nodad']);
    ip(['-n', labNs, 'link', 'set', 'br0', 'up']);
    mgmtNs.forEach((ns, i) => {
      const port = `mg${i + 1}-${id}`;
      ip(['link', 'add', 'mgmt0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', labNs]);
      ip(['-n', labNs, 'link', 'set', port, 'master', 'br0', 'up']);
      ip(['-n', ns, 'addr', 'add', `${net.mgmtAddresses[i]}/24`, 'dev', 'mgmt0']);
      ip(['-n', ns, 'link', 'set', 'mgmt0', 'up']);
    });
    ip(['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'host0', 'netns', labNs]);
    ip(['-n', labNs, 'link', 'set', 'host0', 'master', 'br0', 'up']);
    ip(['addr', 'add', `${net.hostAddress}/24`, 'dev', hostLink]);
    ip(['link', 'set', hostLink, 'up']);
  } catch (error) {
    destroy();
    throw new Error(`boot lab: could not build the network: ${(error as Error).message}`);
  }
  const inNs = (ns: string, command: string, args: string[]) => ({
    command: 'ip',
    args: ['netns', 'exec', ns, command, ...args],
  });
  return {
    labNs,
    mgmtNs,
    bridge: 'br0',
    prefix,
    ...net,
    mgmtInterface: 'mgmt0',
    inNs,
    run: (ns, command, args) => {
      const c = inNs(ns, command, args);
      return execFileSync(c.command, c.args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    },
    destroy,
  };
}
