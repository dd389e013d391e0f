// libvirtd inside the lab namespace (no systemd), so its qemu VMs and their taps sit on the boot
// network, and its unix socket (in this run's scratch dir) is reachable from the host namespace,
// where sushy-tools and virtualbmc listen on loopback. libvirtd's state, config and runtime dirs
// and the `libvirt-qemu` user it resolves at start-up are bind mounts private to its own mount
// namespace (`ip netns exec` makes one), so nothing is written to the machine's /etc, /var or /run.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ManagedProcess, startProcess } from '../env/process.ts';
import { waitFor } from '../env/wait.ts';
import type { LabNetwork } from './network.ts';

export type Firmware = 'uefi' | 'bios';

export interface VmSpec {
  name: string;
  uuid: string;
  mac: string;
  firmware: Firmware;
  /** Blank install disk size. */
  diskMiB?: number;
  memoryMiB?: number;
}

export interface LabVm extends VmSpec {
  domain: string;
  diskFile: string;
  consoleFile: string;
  /** The serial console so far (firmware, iPXE, kernel and the lab agent all print there). */
  console(): string;
  /** Waits until the console shows `pattern` after `from` characters; returns the match's end offset. */
  waitConsole(pattern: RegExp, opts: { from?: number; timeoutMs: number; what: string }): Promise<number>;
  state(): string;
}

export interface Libvirt {
  uri: string;
  process: ManagedProcess;
  defineVm(spec: VmSpec): LabVm;
  virsh(args: string[], timeoutMs?: number): string;
  stop(): Promise<void>;
}

/** Console text without terminal escapes and carriage returns (firmware and iPXE draw with them). */
const ESCAPES = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[a-zA-Z]|\\r|[\\b]`, 'g');
export const plainText = (text: string) => text.replace(ESCAPES, '');

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export async function startLibvirt(opts: {
  net: LabNetwork;
  dir: string;
  libvirtd: string;
  qemu: string;
}): Promise<Libvirt> {
  const { net, dir } = opts;
  const root = join(dir, 'libvirt');
  const paths = {
    etc: join(root, 'etc'),
    varLib: join(root, 'var-lib'),
    varCache: join(root, 'var-cache'),
    varLog: join(root, 'var-log'),
    run: join(root, 'run'),
    sock: join(root, 'sock'),
  };
  for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
  // libvirtd resolves its compiled-in qemu user before reading qemu.conf (only
  // libvirt-daemon-system creates it): add it to private copies of passwd/group.
  const passwd = join(root, 'passwd');
  const group = join(root, 'group');
  copyFileSync('/etc/passwd', passwd);
  copyFileSync('/etc/group', group);
  writeFileSync(
    passwd,
    `${readFileSync(passwd, 'utf8')}libvirt-qemu:x:64055:64055::/nonexistent:/usr/sbin/nologin\n`,
  );
  writeFileSync(group, `${readFileSync(group, 'utf8')}libvirt-qemu:x:64055:\nkvm:x:64056:\n`);
  writeFileSync(
    join(paths.etc, 'libvirtd.conf'),
    [
      `unix_sock_dir = "${paths.sock}"`,
      'unix_sock_rw_perms = "0700"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'log_outputs = "3:stderr"',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(paths.etc, 'qemu.conf'),
    [
      'user = "root"',
      'group = "root"',
      'dynamic_ownership = 0',
      'security_driver = "none"',
      'stdio_handler = "file"',
      'namespaces = [ ]',
      'cgroup_controllers = [ ]',
      '',
    ].join('\n'),
  );
  const script = [
    'set -e',
    `mount --bind ${passwd} /etc/passwd`,
    `mount --bind ${group} /etc/group`,
    `mount --bind ${paths.etc} /etc/libvirt`,
    `mount --bind ${paths.varLib} /var/lib`,
    `mount --bind ${paths.varCache} /var/cache`,
    `mount --bind ${paths.varLog} /var/log`,
    `mount --bind ${paths.run} /run`,
    `exec ${opts.libvirtd} -f /etc/libvirt/libvirtd.conf`,
  ].join('\n');
  const c = net.inNs(net.labNs, 'bash', ['-c', script]);
  const proc = startProcess({ name: 'libvirtd', command: c.command, args: c.args, logDir: dir });
  const uri = `qemu:///system?socket=${join(paths.sock, 'libvirt-sock')}`;
  const virsh = (args: string[], timeout = 60_000) =>
    execFileSync('virsh', ['-c', uri, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout,
    }).toString();
  const domains: string[] = [];
  const stop = async () => {
    for (const d of domains) {
      try {
        virsh(['destroy', d], 15_000);
      } catch {
        // not running
      }
    }
    // qemu runs in its own session under libvirtd: make sure none of this run's VMs is left.
    try {
      execFileSync('pkill', ['-KILL', '-f', `${dir}/vm-`]);
    } catch {
      // none left
    }
    await proc.stop();
  };
  try {
    await waitFor(async () => virsh(['version']).includes('Running hypervisor'), {
      what: 'libvirtd in the lab namespace',
      timeoutMs: 60_000,
      intervalMs: 500,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : 'libvirtd exited'),
    });
  } catch (error) {
    await stop();
    throw error;
  }

  const defineVm = (spec: VmSpec): LabVm => {
    const domain = `vm-${spec.name}`;
    const vmDir = join(dir, domain);
    mkdirSync(vmDir, { recursive: true });
    const diskFile = join(vmDir, 'disk.qcow2');
    const consoleFile = join(vmDir, 'console.log');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', diskFile, `${spec.diskMiB ?? 256}M`]);
    writeFileSync(consoleFile, '');
    const firmware =
      spec.firmware === 'uefi'
        ? `<loader readonly='yes' secure='no' type='pflash'>${OVMF_CODE}</loader>
    <nvram template='${OVMF_VARS}'>${join(vmDir, 'OVMF_VARS.fd')}</nvram>`
        : // SeaBIOS prints (and so lets iPXE print) on the serial port only when asked.
          "<bios useserial='yes'/>";
    // Network first, then the disk: the order that makes install-loop prevention matter. Under
    // UEFI the NIC has no iPXE ROM, so OVMF's own PXE fetches ipxe.efi over TFTP (the seed's path).
    const nicRom = spec.firmware === 'uefi' ? "<rom enabled='no'/>" : '';
    const virtType = process.env.METALBOX_LAB_KVM === '1' ? 'kvm' : 'qemu';
    const xml = `<domain type='${virtType}'>
  <name>${domain}</name>
  <uuid>${spec.uuid}</uuid>
  <memory unit='MiB'>${spec.memoryMiB ?? 512}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    ${firmware}
  </os>
  <cpu mode='maximum' migratable='off'/>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${opts.qemu}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${diskFile}'/>
      <target dev='vda' bus='virtio'/>
      <boot order='2'/>
    </disk>
    <interface type='bridge'>
      <mac address='${spec.mac}'/>
      <source bridge='${net.bridge}'/>
      <model type='virtio'/>
      <boot order='1'/>
      ${nicRom}
    </interface>
    <serial type='file'>
      <source path='${consoleFile}' append='on'/>
      <target port='0'/>
    </serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`;
    const xmlFile = join(vmDir, 'domain.xml');
    writeFileSync(xmlFile, xml);
    virsh(['define', xmlFile]);
    domains.push(domain);
    const console = () => {
      try {
        return readFileSync(consoleFile, 'latin1');
      } catch {
        return '';
      }
    };
    return {
      ...spec,
      domain,
      diskFile,
      consoleFile,
      console,
      async waitConsole(pattern, wopts) {
        const from = wopts.from ?? 0;
        return waitFor(
          async () => {
            const text = console().slice(from);
            const m = pattern.exec(text);
            return m ? from + m.index + m[0].length : undefined;
          },
          {
            what: `${domain}: ${wopts.what}`,
            timeoutMs: wopts.timeoutMs,
            intervalMs: 500,
            context: () => console().slice(-3000),
          },
        );
      },
      state: () => virsh(['domstate', domain]).trim(),
    };
  };
  return { uri, process: proc, defineVm, virsh, stop };
}
