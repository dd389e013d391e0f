// The seed fleet in the boot lab: real VMs (OVMF or SeaBIOS) behind real BMC emulators, the seed's
// DHCP arrangement, the Matchbox pair behind its VIP, and every metalbox controller family in this
// process on the embedded store, its Talos config server and event sink on the test process's own
// address on the lab segment (so they see each VM's real source address). The machine's OS is the
// lab agent, a SIMULATED Talos (test/lab/agent/).
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { HOST_KIND, SECRET_KIND } from '../../src/controllers/baremetalhost/kinds.ts';
import { addControllerFamilies, type BuiltFamilies } from '../../src/controllers/index.ts';
import type { BareMetalHost, BareMetalHostSpec } from '../../src/crds/baremetalhost.ts';
import { type CoreEvent, StoreEventRecorder } from '../../src/runtime/events.ts';
import { Manager } from '../../src/runtime/manager.ts';
import type { Resource } from '../../src/runtime/resource.ts';
import { TALOS_CONFIG_KIND } from '../../src/talos/kinds.ts';
import { labImages } from '../env/peers.ts';
import { waitFor } from '../env/wait.ts';
import { seedHosts, seedTalosConfig } from '../fixtures/talos/seed.ts';
import { baseSecret } from '../fixtures/talos/store.ts';
import { hostEvents, PROFILE_KIND_REF, patchHost } from '../integration/baremetalhost/world.ts';
import {
  NAMESPACE,
  recordingLogger,
  type StoreBackend,
  startFileBackend,
} from '../integration/matchbox-sync/world.ts';
import { type BootLab, startBootLab } from './lab.ts';
import type { Firmware, LabVm } from './libvirt.ts';

export { NAMESPACE };
export type Host = BareMetalHost & Resource;

/** What the lab agent prints on the serial console (test/lab/agent/). */
export const CONSOLE = {
  configFetched: /config fetched \(/,
  configRejected: /CONFIG REJECTED/,
  installDone: /install done:/,
  diskBoot: /DISK-INIT: booted from disk/,
  rescue: /RESCUE-INIT: SIMULATED rescue system booted/,
  wipeDone: /wipe done/,
  maintenance: /maintenance mode \(no config\)/,
};

export interface LabHostSpec {
  name: string;
  firmware: Firmware;
  bmc: 'redfish' | 'ipmi';
  /** Extra spec fields (e.g. bootFromDiskMethod). */
  spec?: Partial<BareMetalHostSpec>;
}

export interface LabHost extends LabHostSpec {
  vm: LabVm;
  mac: string;
  bmcAddress: string;
}

/** Lab timings: TCG VMs take minutes to install, so the provisioning timeout is generous. */
export const LAB_HOST_CONFIG = {
  waitPollSeconds: 1,
  powerPollSeconds: 5,
  powerSettleSeconds: 10,
  errorBackoff: { baseSeconds: 2, capSeconds: 20 },
  delayedRetrySeconds: 2,
  provisioningTimeoutSeconds: 900,
  // OVMF under TCG boots its disk in 30-60 s; libvirt applies a boot device only at a cold start.
  coldStartSeconds: 90,
  bmc: { requestTimeoutSeconds: 30, retries: 2, openSeconds: 5, cycleSettleSeconds: 2 },
};

/** METALBOX_LAB_VERBOSE=1 streams the controllers' log to stderr (a lab run takes minutes). */
function verboseWhenAsked<T extends ReturnType<typeof recordingLogger>>(logger: T): T {
  if (process.env.METALBOX_LAB_VERBOSE !== '1') return logger;
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    const write = logger[level].bind(logger);
    logger[level] = (obj: object, msg?: string) => {
      process.stderr.write(`${new Date().toISOString()} ${level} ${msg ?? ''} ${JSON.stringify(obj)}\n`);
      write(obj, msg);
    };
  }
  return logger;
}

export class LabWorld {
  readonly lab: BootLab;
  readonly backend: StoreBackend;
  readonly logs = verboseWhenAsked(recordingLogger());
  readonly hosts = new Map<string, LabHost>();
  registry = new Registry();
  #controller: { manager: Manager; families: BuiltFamilies; events: StoreEventRecorder } | undefined;
  #macs = 0;

  private constructor(lab: BootLab, backend: StoreBackend) {
    this.lab = lab;
    this.backend = backend;
  }

  static async start(): Promise<LabWorld> {
    const lab = await startBootLab();
    let backend: StoreBackend | undefined;
    try {
      const images = labImages();
      const assets = {
        vmlinuz: images.kernel,
        'netboot.cpio.gz': images.netbootInitrd,
        'rescue.cpio.gz': images.rescueInitrd,
        'disk.img': images.diskImage,
      };
      for (const node of lab.matchbox.nodes) {
        for (const [asset, file] of Object.entries(assets)) copyFileSync(file, join(node.assetsPath, asset));
      }
      backend = await startFileBackend();
      const world = new LabWorld(lab, backend);
      await world.seed();
      return world;
    } catch (error) {
      await backend?.close();
      await lab.destroy();
      throw error;
    }
  }

  get store() {
    return this.backend.store;
  }

  config(): Record<string, unknown> {
    const { pki, nodes } = this.lab.matchbox;
    const tls = { caFile: pki.ca.certFile, certFile: pki.client.certFile, keyFile: pki.client.keyFile };
    return {
      matchbox: {
        endpoints: nodes.map((n) => ({
          name: n.name,
          endpoint: n.rpcEndpoint,
          httpURL: n.httpURL,
          tls,
          timeoutSeconds: 5,
        })),
        driftScanIntervalSeconds: 30,
        verifyBootAnswers: true,
      },
      baremetalhost: LAB_HOST_CONFIG,
      talos: {
        configServer: { listen: `${this.lab.net.hostAddress}:0` },
        eventSink: { listen: `${this.lab.net.hostAddress}:0` },
        tokenTTLSeconds: 1800,
      },
    };
  }

  /** The seed's profiles with the lab's boot images, the rescue profile, the Talos config. */
  async seed(): Promise<void> {
    const vip = this.lab.matchbox.vipURL;
    for (const name of ['talos-control-plane', 'talos-worker']) {
      await this.store.create(PROFILE_KIND_REF, {
        apiVersion: 'metalbox.io/v1alpha1',
        kind: 'MatchboxProfile',
        metadata: { name, namespace: NAMESPACE },
        spec: {
          displayName: `SIMULATED Talos (lab agent) ${name}`,
          kernel: '/assets/vmlinuz',
          initrd: ['/assets/netboot.cpio.gz'],
          args: [
            'initrd=netboot.cpio.gz',
            'console=ttyS0',
            'talos.platform=metal',
            // Replaced per host by the one-time URL.
            `talos.config=${vip}/assets/placeholder.yaml`,
            `metalbox.lab.image=${vip}/assets/disk.img`,
          ],
        },
      } as Resource);
    }
    await this.store.create(PROFILE_KIND_REF, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxProfile',
      metadata: { name: 'rescue', namespace: NAMESPACE },
      spec: {
        displayName: 'SIMULATED rescue system',
        kernel: '/assets/vmlinuz',
        initrd: ['/assets/rescue.cpio.gz'],
        args: ['initrd=rescue.cpio.gz', 'console=ttyS0', 'metalbox.boot=rescue'],
      },
    } as Resource);
    const talos = seedTalosConfig('v1.12') as Resource & { spec: { installDisk?: string } };
    // The lab's VMs have one virtio disk.
    talos.spec.installDisk = '/dev/vda';
    await this.store.create(TALOS_CONFIG_KIND, talos);
    // `talosctl gen config` output with fake secrets (test/fixtures/talos).
    await this.store.create(SECRET_KIND, baseSecret('v1.12'));
  }

  async startController(): Promise<void> {
    assert.equal(this.#controller, undefined, 'controller already running');
    this.registry = new Registry();
    const events = new StoreEventRecorder({
      store: this.store,
      component: 'metalbox-lab',
      logger: this.logs,
    });
    const manager = new Manager({
      store: this.store,
      registry: this.registry,
      logger: this.logs,
      namespace: NAMESPACE,
    });
    const families = await addControllerFamilies(manager, {
      store: this.store,
      events,
      logger: this.logs,
      registry: this.registry,
      namespace: NAMESPACE,
      config: this.config(),
    });
    await manager.start();
    this.#controller = { manager, families, events };
  }

  async stopController(): Promise<void> {
    const c = this.#controller;
    this.#controller = undefined;
    if (!c) return;
    await c.manager.stop();
    await c.families.stop();
    await c.events.flush();
  }

  /** A VM with a blank disk and its BMC (not powered on), and its BareMetalHost from the seed. */
  async addHost(spec: LabHostSpec): Promise<LabHost> {
    const n = ++this.#macs;
    const mac = `52:54:00:77:00:${n.toString(16).padStart(2, '0')}`;
    const uuid = `6d657461-6c62-4f78-8000-${n.toString(16).padStart(12, '0')}`;
    const vm = this.lab.libvirt.defineVm({ name: spec.name, uuid, mac, firmware: spec.firmware });
    let bmcAddress: string;
    let username: string;
    let password: string;
    if (spec.bmc === 'redfish') {
      const r = this.lab.redfish;
      bmcAddress = `redfish+http://${r.host}:${r.port}/redfish/v1/Systems/${uuid}`;
      ({ username, password } = r);
    } else {
      bmcAddress = (await this.lab.ipmi.add(vm.domain)).address;
      ({ username, password } = this.lab.ipmi);
    }
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await this.store.create(SECRET_KIND, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${spec.name}-bmc`, namespace: NAMESPACE },
      type: 'Opaque',
      data: { username: b64(username), password: b64(password) },
    } as Resource);
    const seed = seedHosts().find((h) => h.metadata.name === spec.name);
    const worker = spec.name.startsWith('worker');
    await this.store.create<Host>(HOST_KIND, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'BareMetalHost',
      metadata: { name: spec.name, namespace: NAMESPACE },
      spec: {
        ...(seed?.spec ?? {}),
        online: true,
        bootMACAddress: mac,
        bmc: { address: bmcAddress, credentialsName: `${spec.name}-bmc` },
        bootMode: spec.firmware === 'uefi' ? 'UEFI' : 'legacy',
        role: worker ? 'worker' : 'controlplane',
        profileRef: { name: worker ? 'talos-worker' : 'talos-control-plane' },
        talosConfigRef: { name: 'mycluster' },
        ...spec.spec,
      } as BareMetalHostSpec,
    } as Host);
    const host: LabHost = { ...spec, vm, mac, bmcAddress };
    this.hosts.set(spec.name, host);
    return host;
  }

  host(name: string): Promise<Host> {
    return this.store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name });
  }

  labHost(name: string): LabHost {
    const h = this.hosts.get(name);
    assert.ok(h, `no lab host ${name}`);
    return h;
  }

  async waitForHost(
    name: string,
    predicate: (h: Host) => boolean,
    what: string,
    timeoutMs: number,
  ): Promise<Host> {
    let last: Host | undefined;
    await waitFor(
      async () => {
        last = await this.host(name);
        return predicate(last);
      },
      {
        what: `${name}: ${what}`,
        timeoutMs,
        intervalMs: 1000,
        context: () =>
          [
            `host status: ${JSON.stringify(last?.status, null, 1)}`,
            `--- console of ${name} (tail) ---`,
            this.hosts.get(name)?.vm.console().slice(-2500) ?? '',
            '--- metalbox log tail ---',
            this.logTail(),
            this.lab.logs(),
          ].join('\n'),
      },
    );
    return last!;
  }

  waitForState(name: string, state: string, timeoutMs: number): Promise<Host> {
    return this.waitForHost(
      name,
      (h) => h.status?.provisioning?.state === state,
      `state ${state}`,
      timeoutMs,
    );
  }

  patchHost(name: string, mutate: (h: Host) => void): Promise<Host> {
    return patchHost(this.store, name, mutate);
  }

  events(name: string): Promise<CoreEvent[]> {
    return hostEvents(this.store, name);
  }

  /** How many times a VM fetched its install kernel from either Matchbox (one per netboot install). */
  kernelDownloads(): number {
    return this.lab.matchbox.nodes
      .map((n) => n.process().tail(1_000_000))
      .join('\n')
      .split('\n')
      .filter((l) => l.includes('GET /assets/vmlinuz')).length;
  }

  logTail(lines = 40): string {
    return this.logs.entries
      .slice(-lines)
      .map((e) => `${e.level} ${e.msg ?? ''} ${JSON.stringify(e.fields)}`)
      .join('\n');
  }

  async close(): Promise<void> {
    // The VMs go first: a machine still talking to the config server or event sink would make
    // the controller's shutdown wait for it.
    for (const h of this.hosts.values()) {
      try {
        this.lab.libvirt.virsh(['destroy', h.vm.domain], 15_000);
      } catch {
        // not running
      }
    }
    await this.stopController().catch(() => {});
    if (process.env.METALBOX_DUMP_LOGS) process.stderr.write(`${this.logs.text()}\n`);
    await this.backend.close();
    await this.lab.destroy();
  }
}
