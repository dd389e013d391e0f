// `metalbox demo --lab` (`npm run lab`): the demo on real machines. Three of the seed's hosts as
// VMs with real firmware in the boot lab (cp-01 UEFI over Redfish, cp-02 UEFI over IPMI, worker-01
// BIOS over Redfish), the seed's DHCP arrangement, the Matchbox pair behind its VIP, and metalbox's
// controllers on the embedded store. The OS is the lab agent, a SIMULATED Talos. A live table until
// every host booted its disk, then everything is torn down.
import { INSTALL_CONDITIONS } from '../../src/controllers/baremetalhost/hooks.ts';
import { plainText } from './libvirt.ts';
import { CONSOLE, type Host, LabWorld } from './world.ts';

const HOSTS = [
  { name: 'cp-01', firmware: 'uefi', bmc: 'redfish' },
  { name: 'cp-02', firmware: 'uefi', bmc: 'ipmi' },
  { name: 'worker-01', firmware: 'bios', bmc: 'redfish' },
] as const;

const say = (s: string) => process.stdout.write(`${s}\n`);

/** The VM's last milestone on its serial console. */
function consolePhase(text: string): string {
  const plain = plainText(text);
  const marks: [RegExp, string][] = [
    [CONSOLE.diskBoot, 'booted from disk'],
    [CONSOLE.installDone, 'installed, rebooting'],
    [CONSOLE.configFetched, 'config fetched, installing'],
    [/Linux version/, 'kernel booting'],
    [/iPXE/, 'iPXE'],
    [/BdsDxe|SeaBIOS/, 'firmware'],
  ];
  let best = { at: -1, label: plain.length ? 'firmware' : 'off' };
  for (const [pattern, label] of marks) {
    const at = [...plain.matchAll(new RegExp(pattern.source, 'g'))].at(-1)?.index ?? -1;
    if (at > best.at) best = { at, label };
  }
  return best.label;
}

function table(world: LabWorld, hosts: Map<string, Host>, started: number): string[] {
  const rows = [
    ['HOST', 'FIRMWARE', 'BMC', 'STATE', 'POWER', 'ATTEMPT', 'TALOS (SIMULATED)', 'CONSOLE', 'ERROR'],
  ];
  for (const spec of HOSTS) {
    const s = hosts.get(spec.name)?.status;
    const on = (type: string) => s?.conditions?.some((c) => c.type === type && c.status === 'True');
    const talos = on(INSTALL_CONDITIONS.ready)
      ? 'ready'
      : on(INSTALL_CONDITIONS.bootedFromDisk)
        ? 'booted from disk'
        : on(INSTALL_CONDITIONS.installed)
          ? 'installed'
          : (s?.lastObservedBoot?.phase ?? '-');
    rows.push([
      spec.name,
      spec.firmware === 'uefi' ? 'OVMF' : 'SeaBIOS',
      spec.bmc === 'redfish' ? 'Redfish (sushy)' : 'IPMI (vbmc)',
      s?.provisioning?.state ?? '-',
      s?.poweredOn === undefined ? '-' : s.poweredOn ? 'on' : 'off',
      String(s?.provisioning?.attempt ?? '-'),
      talos,
      consolePhase(world.hosts.get(spec.name)?.vm.console() ?? ''),
      s?.errorType ? `${s.errorType}: ${(s.errorMessage ?? '').slice(0, 50)}` : '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  lines.push(`elapsed ${Math.round((Date.now() - started) / 1000)} s`);
  return lines;
}

export async function runLabDemo(opts: { timeoutS: number }): Promise<number> {
  say('metalbox demo --lab: seed hosts as real VMs, PXE-booted through real DHCP, TFTP, iPXE and Matchbox');
  say('SIMULATED: the OS is the lab agent (a stand-in for Talos); firmware, BMC emulators, network boot and');
  say('           metalbox are real. Needs root (network namespaces) and takes a few minutes under TCG.\n');
  let world: LabWorld | undefined;
  const interrupted = new Promise<'interrupted'>((resolve) =>
    process.once('SIGINT', () => resolve('interrupted')),
  );
  try {
    world = await LabWorld.start();
    say(
      `lab segment ${world.lab.net.prefix}.0/24 in namespace ${world.lab.net.labNs}; Matchbox VIP ${world.lab.net.vip}`,
    );
    for (const h of HOSTS) await world.addHost(h);
    await world.startController();
    const started = Date.now();
    const hosts = new Map<string, Host>();
    const tty = process.stdout.isTTY === true;
    let drawn = 0;
    let last = '';
    for (;;) {
      for (const h of HOSTS) hosts.set(h.name, await world.host(h.name));
      const lines = table(world, hosts, started);
      const frame = lines.slice(0, -1).join('\n');
      if (tty) {
        if (drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
        process.stdout.write(`${lines.join('\n')}\n`);
        drawn = lines.length;
      } else if (frame !== last) {
        process.stdout.write(`${lines.join('\n')}\n\n`);
      }
      last = frame;
      const done = HOSTS.every((h) =>
        hosts
          .get(h.name)
          ?.status?.conditions?.some(
            (c) => c.type === INSTALL_CONDITIONS.bootedFromDisk && c.status === 'True',
          ),
      );
      if (done) {
        say(
          `\nall ${HOSTS.length} hosts installed once and booted from their disks in ${Math.round((Date.now() - started) / 1000)} s`,
        );
        return 0;
      }
      if (Date.now() - started > opts.timeoutS * 1000) {
        process.stderr.write(
          `\nmetalbox demo --lab: not every host booted its disk within ${opts.timeoutS} s\n`,
        );
        return 1;
      }
      const tick = await Promise.race([new Promise((r) => setTimeout(r, 2000, 'tick')), interrupted]);
      if (tick === 'interrupted') return 130;
    }
  } catch (error) {
    process.stderr.write(`metalbox demo --lab: ${(error as Error).message}\n`);
    return 1;
  } finally {
    say('tearing down the lab ...');
    await world?.close();
  }
}
