// The boot lab: real firmware (OVMF, SeaBIOS) in real VMs (qemu under libvirtd) PXE-booting through
// the seed's DHCP arrangement (a DHCP server plus proxy-DHCP/TFTP) to the HA Matchbox pair behind
// keepalived's VIP, with real BMC emulators (sushy-tools' libvirt driver for Redfish, virtualbmc for
// IPMI) driving them. Every peer runs in its own process group and is stopped by destroy(), which
// also deletes the namespaces (and with them every link); see network.ts.
import { join } from 'node:path';
import { labTools, peerBinary, scratchDir } from '../env/peers.ts';
import { type SushyPeer, startSushy } from '../env/sushy.ts';
import { type DhcpPeer, startDhcp } from './dhcp.ts';
import { type Libvirt, OVMF_CODE, OVMF_VARS, startLibvirt } from './libvirt.ts';
import { type MatchboxHA, startMatchboxHA } from './matchbox-ha.ts';
import { createLabNetwork, type LabNetwork } from './network.ts';
import { startVirtualBmc, type VirtualBmc } from './vbmc.ts';

export interface BootLab {
  dir: string;
  net: LabNetwork;
  dhcp: DhcpPeer;
  matchbox: MatchboxHA;
  libvirt: Libvirt;
  redfish: SushyPeer;
  ipmi: VirtualBmc;
  /** Every peer's log tail, for failure messages. */
  logs(): string;
  destroy(): Promise<void>;
}

export async function startBootLab(): Promise<BootLab> {
  const peers = labTools();
  const scratch = scratchDir('lab');
  const dir = scratch.dir;
  const cleanups: (() => Promise<void> | void)[] = [];
  const destroy = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep tearing down
      }
    }
    cleanups.length = 0;
    scratch.remove();
  };
  try {
    const net = createLabNetwork();
    cleanups.push(() => net.destroy());
    const matchbox = await startMatchboxHA({
      net,
      dir,
      matchbox: peerBinary('matchbox'),
      keepalived: peers.keepalived,
    });
    cleanups.push(() => matchbox.stop());
    const dhcp = await startDhcp({
      net,
      dir,
      dnsmasq: peers.dnsmasq,
      bootURL: `${matchbox.vipURL}/boot.ipxe`,
    });
    cleanups.push(() => dhcp.stop());
    const libvirt = await startLibvirt({ net, dir, libvirtd: peers.libvirtd, qemu: peers.qemu });
    cleanups.push(() => libvirt.stop());
    const redfish = await startSushy({
      name: 'lab-sushy',
      systems: [],
      libvirt: {
        uri: libvirt.uri,
        emulator: join(peers.bmcVenv, 'bin', 'sushy-emulator'),
        uefi: { code: OVMF_CODE, vars: OVMF_VARS },
      },
    });
    cleanups.push(() => redfish.destroy());
    const ipmi = await startVirtualBmc({ dir, venvBin: join(peers.bmcVenv, 'bin'), libvirtUri: libvirt.uri });
    cleanups.push(() => ipmi.stop());
    const logs = () =>
      [
        dhcp.router,
        dhcp.proxy,
        matchbox.nodes[0].process(),
        matchbox.nodes[1].process(),
        libvirt.process,
        redfish.process(),
        ipmi.process,
      ]
        .map((p) => `--- ${p.name} ---\n${p.tail(20)}`)
        .join('\n');
    return { dir, net, dhcp, matchbox, libvirt, redfish, ipmi, logs, destroy };
  } catch (error) {
    await destroy();
    throw error;
  }
}
