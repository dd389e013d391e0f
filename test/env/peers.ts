// Where the binaries of the real test peers are: written by scripts/setup into .peers.json.
// A missing peer is an error, never a skip: `npm test` runs the set-up first, so a peer that is
// absent means the set-up is broken, and CI must say so.
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PeerBinaries {
  node: string;
  etcd: string;
  kubeApiserver: string;
  kubeVersion: string;
  matchbox: string;
  matchboxVersion: string;
  sushyEmulator: string;
  sushyVersion: string;
  ipmiSim: string;
  ipmitool: string;
  talosctl: string;
  talosctlVersion: string;
  /** The boot lab's images (test/lab/build-images.sh) and the agent inside them. */
  lab: LabImages;
  /** The boot lab's daemons and BMC emulators (test/lab/). */
  labTools: LabTools;
  crane: string;
  craneVersion: string;
  /** test/tools/kstatus-check: kstatus (cli-utils) and the Argo CD Lua health checks. */
  kstatusCheck: string;
  kstatusCheckVersion: string;
  helm: string;
  helmVersion: string;
  /** kubelet, kube-controller-manager, kube-scheduler and kube-proxy (the test cluster's node). */
  kubeNodeDir: string;
  /** The locally built pause image (docker-archive) and the name containerd knows it by. */
  pauseImage: string;
  pauseImageName: string;
  containerd: string;
  runc: string;
  cniBinDir: string;
}

export interface LabImages {
  /** The static lab agent (SIMULATED Talos), also inside netbootInitrd. */
  agent: string;
  /** Debian's cloud kernel. */
  kernel: string;
  /** busybox + virtio modules + the agent (netboot, wipe and disk modes). */
  netbootInitrd: string;
  /** busybox only; prints RESCUE-INIT and idles. */
  rescueInitrd: string;
  /** What the agent installs: MBR, FAT boot partition (SYSLINUX + UKI), record partition. */
  diskImage: string;
}

export interface LabTools {
  dnsmasq: string;
  keepalived: string;
  libvirtd: string;
  qemu: string;
  /** A venv with sushy-tools and virtualbmc that sees Debian's libvirt bindings. */
  bmcVenv: string;
}

const peersFile = fileURLToPath(new URL('./.peers.json', import.meta.url));
let cached: PeerBinaries | undefined;

export function peerBinaries(): PeerBinaries {
  if (cached) return cached;
  let parsed: PeerBinaries;
  try {
    parsed = JSON.parse(readFileSync(peersFile, 'utf8')) as PeerBinaries;
  } catch {
    throw new Error(`${peersFile} is missing: run \`npm run setup\` (npm test does this itself)`);
  }
  cached = parsed;
  return parsed;
}

/** The boot lab's images, each checked to be readable. */
export function labImages(): LabImages {
  const lab = peerBinaries().lab;
  if (!lab) throw new Error(`${peersFile} names no lab images: run \`npm run setup\``);
  for (const [name, path] of Object.entries(lab)) {
    try {
      accessSync(path, constants.R_OK);
    } catch {
      throw new Error(`lab image ${name} is not at ${path}: run \`npm run setup\``);
    }
  }
  return lab;
}

/** The boot lab's daemons and BMC emulators, each checked to exist. */
export function labTools(): LabTools {
  const tools = peerBinaries().labTools;
  if (!tools) throw new Error(`${peersFile} names no boot lab tools: run \`npm run setup\``);
  for (const [name, path] of Object.entries(tools)) {
    try {
      accessSync(path, constants.R_OK);
    } catch {
      throw new Error(`boot lab tool ${name} is not installed at ${path}: run \`npm run setup\``);
    }
  }
  return tools;
}

/** The path of one peer binary, checked to be executable. */
export function peerBinary(
  name: Exclude<keyof PeerBinaries, `${string}Version` | 'lab' | 'labTools'>,
): string {
  const path = peerBinaries()[name];
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`test peer ${name} is not installed at ${path}: run \`npm run setup\``);
  }
  return path;
}

/** A scratch directory removed by the returned cleanup (kept when METALBOX_KEEP_TMP is set). */
export function scratchDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `metalbox-${prefix}-`));
  return {
    dir,
    remove: () => {
      if (!process.env.METALBOX_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
    },
  };
}
