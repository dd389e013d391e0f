// Measures, in the boot lab, what each boot-from-disk answer does on real firmware when the
// network is first in the boot order: an installed disk (the lab's disk.img) behind a NIC that PXE
// boots first, Matchbox answering the method's script (or nothing), and what the serial console
// shows: the disk booted, the firmware menu, or nothing (hang). The table goes to docs/boot-from-disk.md.
// Usage: bash scripts/node scripts/lab-disk-answers.ts [--firmware uefi|bios] [--method name] [--timeout s]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DISK_KERNEL } from '../src/controllers/baremetalhost/children.ts';
import { labImages } from '../test/env/peers.ts';
import { startBootLab } from '../test/lab/lab.ts';
import { type Firmware, plainText } from '../test/lab/libvirt.ts';

const { values } = parseArgs({
  options: {
    firmware: { type: 'string', multiple: true },
    method: { type: 'string', multiple: true },
    timeout: { type: 'string' },
  },
});

interface Method {
  name: string;
  /** The iPXE script Matchbox answers, or undefined for no group at all (a 404). */
  script?: string;
  /** A BMC action before the boot (the override/boot order set to the disk). */
  bmc?: 'redfish-hdd-continuous' | 'ipmi-disk-persistent';
}

const METHODS: Method[] = [
  { name: 'ipxe-exit', script: '#!ipxe\nexit\n' },
  { name: 'ipxe-exit-1', script: '#!ipxe\nexit 1\n' },
  { name: 'ipxe-sanboot', script: '#!ipxe\nsanboot --no-describe --drive 0x80\n' },
  { name: 'http-404' },
  { name: 'bmc-redfish-disk', script: '#!ipxe\nexit\n', bmc: 'redfish-hdd-continuous' },
  { name: 'bmc-ipmi-disk', script: '#!ipxe\nexit\n', bmc: 'ipmi-disk-persistent' },
];

const firmwares = (values.firmware ?? ['bios', 'uefi']) as Firmware[];
const methods = METHODS.filter((m) => !values.method || values.method.includes(m.name));
const timeoutMs = Number(values.timeout ?? 240) * 1000;
const t0 = Date.now();
const say = (s: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

const lab = await startBootLab();
const results: { firmware: Firmware; method: string; outcome: string; seconds: number; evidence: string }[] =
  [];
try {
  const images = labImages();
  let n = 0;
  for (const firmware of firmwares) {
    for (const method of methods) {
      n++;
      const mac = `52:54:00:77:01:${n.toString(16).padStart(2, '0')}`;
      const uuid = `6d657461-6c62-4f78-8001-${n.toString(16).padStart(12, '0')}`;
      const name = `da-${firmware}-${n}`;
      for (const node of lab.matchbox.nodes) {
        const id = `da-${n}`;
        writeFileSync(
          join(node.dataPath, 'profiles', `${id}.json`),
          JSON.stringify({ id, boot: { kernel: DISK_KERNEL }, generic_id: `${id}.ipxe` }),
        );
        writeFileSync(join(node.dataPath, 'generic', `${id}.ipxe`), method.script ?? '');
        if (method.script !== undefined) {
          writeFileSync(
            join(node.dataPath, 'groups', `${id}.json`),
            JSON.stringify({ id, profile: id, selector: { mac } }),
          );
        }
      }
      const vm = lab.libvirt.defineVm({ name, uuid, mac, firmware });
      // The installed disk: the lab's disk.img as the VM's disk.
      execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', images.diskImage, vm.diskFile]);
      const auth = `Basic ${Buffer.from(`${lab.redfish.username}:${lab.redfish.password}`).toString('base64')}`;
      const redfish = (path: string, method: string, body: unknown) =>
        fetch(`${lab.redfish.url}/redfish/v1/Systems/${uuid}${path}`, {
          method,
          headers: { authorization: auth, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      if (method.bmc === 'redfish-hdd-continuous') {
        const res = await redfish('', 'PATCH', {
          Boot: { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' },
        });
        if (!res.ok) throw new Error(`PATCH boot override: HTTP ${res.status}`);
      }
      if (method.bmc === 'ipmi-disk-persistent') {
        const bmc = await lab.ipmi.add(vm.domain);
        execFileSync(
          'ipmitool',
          [
            '-I',
            'lanplus',
            '-H',
            '127.0.0.1',
            '-p',
            String(bmc.port),
            '-U',
            lab.ipmi.username,
            '-E',
            'chassis',
            'bootdev',
            'disk',
            'options=persistent',
          ],
          { env: { ...process.env, IPMI_PASSWORD: lab.ipmi.password } },
        );
      }
      const started = Date.now();
      const res = await redfish('/Actions/ComputerSystem.Reset', 'POST', { ResetType: 'On' });
      if (!res.ok) throw new Error(`power on: HTTP ${res.status}`);
      let outcome = 'hang';
      let evidence = '';
      for (;;) {
        const text = vm.console();
        const disk = /DISK-INIT: booted from disk/.exec(text);
        const menu = /"UiApp"|Boot Manager Menu|Boot Option Maintenance/.exec(text);
        if (disk) {
          outcome = 'boots disk';
          evidence = disk[0];
          break;
        }
        if (menu) {
          outcome = 'firmware menu';
          evidence = menu[0];
          break;
        }
        if (Date.now() - started > timeoutMs) {
          evidence = plainText(text).trim().split('\n').slice(-2).join(' | ').slice(0, 160);
          break;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
      const seconds = Math.round((Date.now() - started) / 1000);
      results.push({ firmware, method: method.name, outcome, seconds, evidence });
      say(`${firmware} ${method.name}: ${outcome} after ${seconds} s (${evidence})`);
      lab.libvirt.virsh(['destroy', vm.domain]);
    }
  }
} finally {
  await lab.destroy();
}
process.stdout.write('\n| method | firmware | outcome | seconds to outcome |\n|---|---|---|---|\n');
for (const r of results)
  process.stdout.write(`| ${r.method} | ${r.firmware} | ${r.outcome} | ${r.seconds} |\n`);
