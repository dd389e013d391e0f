// The seed's DHCP arrangement, for real: one dnsmasq plays the pfSense DHCP server (addresses,
// router, DNS; no boot options), and one dnsmasq on mgmt-01 does proxy-DHCP + TFTP only: it hands
// PXE firmware Debian's iPXE (undionly.kpxe for BIOS, ipxe.efi for UEFI) and chainloads iPXE
// clients to Matchbox's /boot.ipxe on the VIP.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ManagedProcess, startProcess } from '../env/process.ts';
import { waitFor } from '../env/wait.ts';
import type { LabNetwork } from './network.ts';

export interface DhcpPeer {
  router: ManagedProcess;
  proxy: ManagedProcess;
  leasesFile: string;
  /** The address the router leased to a MAC, if any. */
  leaseOf(mac: string): string | undefined;
  routerLog(): string;
  proxyLog(): string;
  stop(): Promise<void>;
}

const IPXE_DIR = '/usr/lib/ipxe';

export async function startDhcp(opts: {
  net: LabNetwork;
  dir: string;
  dnsmasq: string;
  /** Where iPXE clients are sent: Matchbox's boot script on the VIP. */
  bootURL: string;
}): Promise<DhcpPeer> {
  const { net, dir } = opts;
  const tftp = join(dir, 'tftp');
  mkdirSync(tftp, { recursive: true });
  for (const file of ['undionly.kpxe', 'ipxe.efi']) copyFileSync(join(IPXE_DIR, file), join(tftp, file));
  const leasesFile = join(dir, 'router.leases');
  const routerLog = join(dir, 'dhcp-router.log');
  const proxyLog = join(dir, 'dhcp-proxy.log');
  writeFileSync(
    join(dir, 'router.conf'),
    [
      'port=0',
      // Reads this run's 0700 scratch dir (TFTP root, leases) as root instead of dropping to nobody.
      'user=root',
      'interface=br0',
      'bind-interfaces',
      `dhcp-range=${net.prefix}.100,${net.prefix}.199,255.255.255.0,1h`,
      `dhcp-option=option:router,${net.routerAddress}`,
      `dhcp-option=option:dns-server,${net.routerAddress}`,
      `dhcp-leasefile=${leasesFile}`,
      'dhcp-authoritative',
      'log-dhcp',
      'enable-ra',
      'dhcp-range=fd77::,ra-only,64,1h',
      `pid-file=${join(dir, 'router.pid')}`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'proxy.conf'),
    [
      'port=0',
      // Reads this run's 0700 scratch dir (TFTP root, leases) as root instead of dropping to nobody.
      'user=root',
      `interface=${net.mgmtInterface}`,
      'bind-interfaces',
      `dhcp-range=${net.prefix}.0,proxy,255.255.255.0`,
      `dhcp-leasefile=${join(dir, 'proxy.leases')}`,
      'enable-tftp',
      `tftp-root=${tftp}`,
      'dhcp-userclass=set:ipxe,iPXE',
      'pxe-service=tag:!ipxe,X86PC,"PXE chainload to iPXE",undionly.kpxe',
      'pxe-service=tag:!ipxe,X86-64_EFI,"PXE chainload to iPXE",ipxe.efi',
      `pxe-service=tag:ipxe,X86PC,"iPXE to Matchbox",${opts.bootURL}`,
      `pxe-service=tag:ipxe,X86-64_EFI,"iPXE to Matchbox",${opts.bootURL}`,
      'log-dhcp',
      `pid-file=${join(dir, 'proxy.pid')}`,
      '',
    ].join('\n'),
  );
  const start = (name: string, ns: string, conf: string, log: string) => {
    const c = net.inNs(ns, opts.dnsmasq, ['-k', '-C', join(dir, conf), `--log-facility=${log}`]);
    return startProcess({ name, command: c.command, args: c.args, logDir: dir });
  };
  const router = start('dhcp-router', net.labNs, 'router.conf', routerLog);
  const proxy = start('dhcp-proxy', net.mgmtNs[0], 'proxy.conf', proxyLog);
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    await Promise.all([router.stop(), proxy.stop()]);
  };
  try {
    for (const [proc, log, ready] of [
      [router, routerLog, 'DHCP, sockets bound exclusively'],
      [proxy, proxyLog, 'TFTP root is'],
    ] as const) {
      await waitFor(async () => read(log).includes(ready), {
        what: `${proc.name} ready`,
        timeoutMs: 15_000,
        context: () => `${read(log)}\n${proc.tail()}`,
        abortIf: () => (proc.isRunning() ? undefined : `${proc.name} exited`),
      });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    router,
    proxy,
    leasesFile,
    leaseOf: (mac) => {
      const line = read(leasesFile)
        .split('\n')
        .find((l) => l.split(' ')[1]?.toLowerCase() === mac.toLowerCase());
      return line?.split(' ')[2];
    },
    routerLog: () => read(routerLog),
    proxyLog: () => read(proxyLog),
    stop,
  };
}
