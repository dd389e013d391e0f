// A running host lifecycle for integration tests: a real store (kube-apiserver or the file store),
// the real Matchbox pair with boot assets, sushy-tools fake systems (and ipmi_sim when asked), every
// controller family (the Matchbox sync and the BareMetalHost controller) in a runtime Manager in
// this process, and a SIMULATED machine per host walking the real boot chain.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { provideProvisioningHooks } from '../../../src/controllers/baremetalhost/family.ts';
import type { ProvisioningHooks } from '../../../src/controllers/baremetalhost/hooks.ts';
import { HOST_KIND, SECRET_KIND } from '../../../src/controllers/baremetalhost/kinds.ts';
import { addControllerFamilies, type BuiltFamilies } from '../../../src/controllers/index.ts';
import type { BareMetalHost, BareMetalHostSpec } from '../../../src/crds/baremetalhost.ts';
import type { MatchboxGroup } from '../../../src/crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../../../src/crds/matchboxprofile.ts';
import { type CoreEvent, EventKind, StoreEventRecorder } from '../../../src/runtime/events.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import type { Resource, ResourceKind } from '../../../src/runtime/resource.ts';
import type { ResourceStore } from '../../../src/runtime/store.ts';
import { redfishSystemView, type SimulatedBmcView } from '../../../src/sim/bmc-view.ts';
import { SimulatedMachine } from '../../../src/sim/machine.ts';
import { storeInstallReporter } from '../../../src/sim/reporter.ts';
import { type IpmiSimPeer, runIpmitool, startIpmiSim } from '../../env/ipmisim.ts';
import type { KubeApiserverPeer } from '../../env/kube.ts';
import { startMatchboxPair } from '../../env/matchbox.ts';
import { type ManagedProcess, startProcess } from '../../env/process.ts';
import type { RedfishMockup } from '../../env/redfish-mockup.ts';
import { type SushyPeer, startSushy } from '../../env/sushy.ts';
import { waitFor } from '../../env/wait.ts';
import {
  NAMESPACE,
  type Pair,
  recordingLogger,
  type StoreBackend,
  startFileBackend,
  startKubeBackend,
} from '../matchbox-sync/world.ts';

export { NAMESPACE };
export const PROFILE_KIND_REF: ResourceKind = {
  group: 'metalbox.io',
  version: 'v1alpha1',
  kind: 'MatchboxProfile',
  plural: 'matchboxprofiles',
  namespaced: true,
};
export const GROUP_KIND_REF: ResourceKind = {
  ...PROFILE_KIND_REF,
  kind: 'MatchboxGroup',
  plural: 'matchboxgroups',
};

export type Host = BareMetalHost & Resource;

export interface WorldOptions {
  backend: 'kube' | 'file';
  /** sushy-tools fake systems (default 2). */
  systems?: number;
  /** Also start an IPMI simulator. */
  ipmi?: boolean;
  /** Overrides of the `baremetalhost` config section. */
  hostConfig?: Record<string, unknown>;
}

/** How the simulated machines behave (changeable between tests). */
export interface MachineSettings {
  pollMs: number;
  installMs: number;
}

/** Fast timings for tests; sushy-tools applies power changes 1-11 s after a request. */
export const TEST_HOST_CONFIG = {
  waitPollSeconds: 0.5,
  powerPollSeconds: 2,
  powerSettleSeconds: 15,
  errorBackoff: { baseSeconds: 1, capSeconds: 8 },
  delayedRetrySeconds: 1,
  provisioningTimeoutSeconds: 180,
  bmc: { requestTimeoutSeconds: 5, retries: 1, openSeconds: 2, cycleSettleSeconds: 2 },
};

export interface HostSystem {
  /** BMC address for spec.bmc.address. */
  address: string;
  mac: string;
  uuid: string;
  view(): SimulatedBmcView;
}

export class World {
  readonly backend: StoreBackend;
  readonly pair: Pair;
  readonly sushy: SushyPeer;
  readonly ipmi: IpmiSimPeer | undefined;
  readonly logs = recordingLogger();
  readonly machines = new Map<string, SimulatedMachine>();
  readonly systems: HostSystem[];
  readonly ipmiSystem: HostSystem | undefined;
  hostConfig: Record<string, unknown>;
  machineSettings: MachineSettings = { pollMs: 300, installMs: 500 };
  /** OS-config hooks handed to the host controller (default: none). */
  hooks: ProvisioningHooks | undefined;
  registry = new Registry();
  #controller: { manager: Manager; families: BuiltFamilies; events: StoreEventRecorder } | undefined;

  private constructor(
    backend: StoreBackend,
    pair: Pair,
    sushy: SushyPeer,
    ipmi: IpmiSimPeer | undefined,
    hostConfig: Record<string, unknown>,
  ) {
    this.backend = backend;
    this.pair = pair;
    this.sushy = sushy;
    this.ipmi = ipmi;
    this.hostConfig = hostConfig;
    this.systems = sushy.systems.map((s) => ({
      address: `redfish+http://${sushy.host}:${sushy.port}/redfish/v1/Systems/${s.uuid}`,
      mac: s.macs[0]!,
      uuid: s.uuid,
      view: () =>
        redfishSystemView({
          baseUrl: sushy.url,
          systemPath: `/redfish/v1/Systems/${s.uuid}`,
          username: sushy.username,
          password: sushy.password,
        }),
    }));
    if (ipmi) {
      this.ipmiSystem = {
        address: `ipmi://${ipmi.host}:${ipmi.port}`,
        mac: '52:54:00:aa:00:99',
        uuid: '6d6f6e6f-0000-4000-8000-000000000099',
        view: () => ipmiSimView(ipmi),
      };
    }
  }

  static async start(opts: WorldOptions): Promise<World> {
    const backend = opts.backend === 'kube' ? await startKubeBackend() : await startFileBackend();
    const cleanups: (() => Promise<void>)[] = [() => backend.close()];
    try {
      const pair = await startMatchboxPair();
      cleanups.push(() => pair.destroy());
      for (const peer of [pair.a, pair.b]) writeAssets(peer.assetsPath);
      const count = opts.systems ?? 2;
      const sushy = await startSushy({
        systems: Array.from({ length: count }, (_, i) => ({
          name: `node-${i}`,
          macs: [`52:54:00:aa:00:${i.toString(16).padStart(2, '0')}`],
        })),
      });
      cleanups.push(() => sushy.destroy());
      const ipmi = opts.ipmi ? await startIpmiSim({ name: 'bmh-ipmi' }) : undefined;
      if (ipmi) cleanups.push(() => ipmi.destroy());
      const world = new World(backend, pair, sushy, ipmi, { ...TEST_HOST_CONFIG, ...opts.hostConfig });
      await world.seedProfiles();
      return world;
    } catch (error) {
      for (const c of cleanups.reverse()) await c().catch(() => {});
      throw error;
    }
  }

  get store(): ResourceStore {
    return this.backend.store;
  }

  /** The `--config` a controller gets: both Matchbox servers, fast host timings. */
  config(): Record<string, unknown> {
    const { pair } = this;
    const tls = {
      caFile: pair.pki.ca.certFile,
      certFile: pair.pki.client.certFile,
      keyFile: pair.pki.client.keyFile,
    };
    return {
      matchbox: {
        endpoints: [
          { name: 'a', endpoint: pair.a.rpcEndpoint, httpURL: pair.a.httpURL, tls, timeoutSeconds: 5 },
          { name: 'b', endpoint: pair.b.rpcEndpoint, httpURL: pair.b.httpURL, tls, timeoutSeconds: 5 },
        ],
        driftScanIntervalSeconds: 3600,
        verifyBootAnswers: false,
      },
      baremetalhost: this.hostConfig,
    };
  }

  /** Runs every controller family in a Manager in this process. */
  async startController(): Promise<void> {
    assert.equal(this.#controller, undefined, 'controller already running');
    this.registry = new Registry();
    const events = new StoreEventRecorder({
      store: this.store,
      component: 'metalbox-test',
      logger: this.logs,
    });
    const manager = new Manager({
      store: this.store,
      registry: this.registry,
      logger: this.logs,
      namespace: NAMESPACE,
    });
    const deps = {
      store: this.store,
      events,
      logger: this.logs,
      registry: this.registry,
      namespace: NAMESPACE,
      config: this.config(),
    };
    if (this.hooks) provideProvisioningHooks(deps, this.hooks);
    const families = await addControllerFamilies(manager, deps);
    await manager.start();
    this.#controller = { manager, families, events };
  }

  /**
   * Starts a real `metalbox controller` process on the kube store with this world's config
   * (kube backend only); `extraArgs` are appended (e.g. --metrics-addr).
   */
  spawnController(logDir: string, name: string, extraArgs: string[] = []): ManagedProcess {
    const kube = (this.backend as StoreBackend & { kube?: KubeApiserverPeer }).kube;
    assert.ok(kube, 'spawnController needs the kube backend');
    const configFile = join(logDir, `${name}.json`);
    writeFileSync(configFile, JSON.stringify(this.config()));
    return startProcess({
      name,
      command: 'bash',
      args: [
        'scripts/node',
        'src/cli/main.ts',
        'controller',
        '--store',
        'kube',
        '--kubeconfig',
        kube.kubeconfigFile('admin'),
        '--namespace',
        NAMESPACE,
        '--config',
        configFile,
        ...extraArgs,
      ],
      logDir,
      cwd: fileURLToPath(new URL('../../../', import.meta.url)),
    });
  }

  /** Graceful stop of the in-process controllers. */
  async stopController(): Promise<void> {
    const c = this.#controller;
    this.#controller = undefined;
    if (!c) return;
    await c.manager.stop();
    await c.families.stop();
    await c.events.flush();
  }

  async seedProfiles(): Promise<void> {
    const config = `${this.pair.a.httpURL}/assets/controlplane.yaml`;
    await this.apply(PROFILE_KIND_REF, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxProfile',
      metadata: { name: 'talos-control-plane', namespace: NAMESPACE },
      spec: {
        kernel: '/assets/vmlinuz',
        initrd: ['/assets/initramfs.xz'],
        args: ['initrd=initramfs.xz', 'console=ttyS0', 'talos.platform=metal', `talos.config=${config}`],
      },
    });
    await this.apply(PROFILE_KIND_REF, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxProfile',
      metadata: { name: 'rescue', namespace: NAMESPACE },
      spec: {
        kernel: '/assets/rescue-vmlinuz',
        initrd: ['/assets/rescue-initrd'],
        args: ['boot=casper', 'rescue=1'],
      },
    });
  }

  async apply<T extends Resource>(kind: ResourceKind, obj: T): Promise<T> {
    return this.store.create(kind, obj);
  }

  /** A Secret and a BareMetalHost for `system` (and a simulated machine unless machine: false). */
  async addHost(
    name: string,
    system: HostSystem,
    opts: {
      spec?: Partial<BareMetalHostSpec>;
      /** BMC credentials other than the sushy/ipmi peer's (e.g. a Redfish mockup's). */
      username?: string;
      password?: string;
      machine?: boolean;
      annotations?: Record<string, string>;
    } = {},
  ): Promise<Host> {
    const ipmi = system === this.ipmiSystem;
    const username = opts.username ?? (ipmi ? this.ipmi!.username : this.sushy.username);
    const password = opts.password ?? (ipmi ? this.ipmi!.password : this.sushy.password);
    await this.store.create(SECRET_KIND, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-bmc`, namespace: NAMESPACE },
      type: 'Opaque',
      data: { username: b64(username), password: b64(password) },
    } as Resource);
    const spec: BareMetalHostSpec = {
      online: true,
      bootMACAddress: system.mac,
      bmc: { address: system.address, credentialsName: `${name}-bmc`, disableCertificateVerification: false },
      // A SIMULATED machine falls through iPXE's exit to its disk whatever its firmware; the UEFI
      // default (bmc: the disk as the BMC's boot device during the install) runs on real firmware
      // in test/lab/.
      bootFromDiskMethod: 'ipxe-exit',
      // Nor do they wipe their disk on a cleaning boot: deprovisioning with cleaning is tested on
      // real machines in test/lab/.
      automatedCleaningMode: 'disabled',
      role: 'controlplane',
      profileRef: { name: 'talos-control-plane' },
      bootTarget: 'install',
      powerPolicy: 'enforce',
      inspectionMode: 'bmc',
      ...opts.spec,
    };
    const host = await this.store.create<Host>(HOST_KIND, {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'BareMetalHost',
      metadata: {
        name,
        namespace: NAMESPACE,
        ...(opts.annotations ? { annotations: opts.annotations } : {}),
      },
      spec,
    });
    if (opts.machine !== false) this.startMachine(name, system);
    return host;
  }

  startMachine(name: string, system: HostSystem, diskInstalled = false): SimulatedMachine {
    const machine = new SimulatedMachine({
      name,
      mac: system.mac,
      uuid: system.uuid,
      bmc: system.view(),
      matchboxUrls: [this.pair.a.httpURL, this.pair.b.httpURL],
      reporter: storeInstallReporter(this.store, { namespace: NAMESPACE, name }),
      pollMs: this.machineSettings.pollMs,
      installMs: this.machineSettings.installMs,
      logger: this.logs,
      diskInstalled,
    });
    machine.start();
    this.machines.set(name, machine);
    return machine;
  }

  machine(name: string): SimulatedMachine {
    const m = this.machines.get(name);
    assert.ok(m, `no simulated machine ${name}`);
    return m;
  }

  async setSecretPassword(name: string, password: string): Promise<void> {
    const secret = await this.store.get<Resource & { data: Record<string, string> }>(SECRET_KIND, {
      namespace: NAMESPACE,
      name: `${name}-bmc`,
    });
    secret.data = { ...secret.data, password: b64(password) };
    await this.store.update(SECRET_KIND, secret);
  }

  async host(name: string): Promise<Host> {
    return this.store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name });
  }

  async waitForHost(
    name: string,
    predicate: (h: Host) => boolean,
    what: string,
    timeoutMs = 120_000,
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
        intervalMs: 200,
        context: () =>
          `host status: ${JSON.stringify(last?.status, null, 1)}\n--- log tail ---\n${this.logTail()}`,
      },
    );
    return last!;
  }

  waitForState(name: string, state: string, timeoutMs = 120_000): Promise<Host> {
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

  async group(name: string): Promise<MatchboxGroup & Resource> {
    return this.store.get(GROUP_KIND_REF, { namespace: NAMESPACE, name });
  }

  async profile(name: string): Promise<MatchboxProfile & Resource> {
    return this.store.get(PROFILE_KIND_REF, { namespace: NAMESPACE, name });
  }

  /** What each Matchbox answers /ipxe for the MAC: 'install', 'exit', the kernel, or 'none'. */
  async bootAnswers(mac: string): Promise<string[]> {
    const answers: string[] = [];
    for (const peer of [this.pair.a, this.pair.b]) {
      const res = await fetch(`${peer.httpURL}/ipxe?mac=${mac.replaceAll(':', '-')}`);
      const body = await res.text();
      if (res.status === 404) answers.push('none');
      else if (body.includes('/generic?mac=')) answers.push('exit');
      else if (body.includes('talos.config=')) answers.push('install');
      else answers.push(/^kernel (\S+)/m.exec(body)?.[1] ?? body);
    }
    return answers;
  }

  /** What the emulator says of a system: power and boot override. */
  async systemState(system: HostSystem): Promise<{ power: string; override: string }> {
    const data = (await this.sushy.get(`/redfish/v1/Systems/${system.uuid}`)) as {
      PowerState?: string;
      Boot?: { BootSourceOverrideTarget?: string };
    };
    return { power: data.PowerState ?? '?', override: data.Boot?.BootSourceOverrideTarget ?? '?' };
  }

  /** A power action on the emulator behind metalbox's back (another tool, a person at the console). */
  async resetSystem(system: HostSystem, type: 'On' | 'ForceOff' | 'ForceRestart'): Promise<void> {
    const auth = `Basic ${Buffer.from(`${this.sushy.username}:${this.sushy.password}`).toString('base64')}`;
    const res = await fetch(
      `${this.sushy.url}/redfish/v1/Systems/${system.uuid}/Actions/ComputerSystem.Reset`,
      {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ ResetType: type }),
      },
    );
    assert.ok(res.ok, `reset ${type}: HTTP ${res.status}`);
  }

  /** Reset requests the emulator received for a system. */
  resetCount(system: HostSystem): number {
    return this.sushyLog().filter((l) => l.includes(`/Systems/${system.uuid}/Actions/ComputerSystem.Reset`))
      .length;
  }

  /** Lines of the sushy-tools log (power and boot requests the emulator received). */
  sushyLog(): string[] {
    return this.sushy.process().tail(100_000).split('\n');
  }

  logTail(lines = 40): string {
    return this.logs.entries
      .slice(-lines)
      .map((e) => `${e.level} ${e.msg ?? ''} ${JSON.stringify(e.fields)}`)
      .join('\n');
  }

  async close(): Promise<void> {
    for (const m of this.machines.values()) await m.stop();
    await this.stopController().catch(() => {});
    if (process.env.METALBOX_DUMP_LOGS) process.stderr.write(`${this.logs.text()}\n`);
    await this.sushy.destroy();
    await this.ipmi?.destroy();
    await this.pair.destroy();
    await this.backend.close();
  }
}

/**
 * A HostSystem on a Redfish mockup tree (test/env/redfish-mockup.ts): the address to write, the
 * boot MAC (the tree's first NIC when it lists one), the tree's UUID, and a SIMULATED machine's view.
 */
export function mockupHostSystem(
  m: RedfishMockup,
  opts: { system?: string; scheme?: string; mac?: string } = {},
): HostSystem {
  const systemPath = opts.system ?? m.systems[0]!;
  const sys = m.original(systemPath) ?? {};
  const nicsPath = (sys.EthernetInterfaces as { '@odata.id'?: string } | undefined)?.['@odata.id'];
  const firstNic = nicsPath
    ? (m.original(nicsPath)?.Members as { '@odata.id': string }[] | undefined)?.[0]?.['@odata.id']
    : undefined;
  const treeMac = firstNic ? (m.original(firstNic)?.MACAddress as string | undefined) : undefined;
  return {
    address: `${opts.scheme ?? 'redfish+http'}://${m.host}:${m.port}${systemPath}`,
    mac: (opts.mac ?? treeMac ?? '52:54:00:aa:01:01').toLowerCase(),
    uuid: String(sys.UUID ?? '').toLowerCase(),
    view: () => redfishSystemView({ baseUrl: m.url, systemPath, username: m.username, password: m.password }),
  };
}

/** Changes the stored host with `mutate`, again on a write conflict. */
export async function patchHost(
  store: ResourceStore,
  name: string,
  mutate: (h: Host) => void,
): Promise<Host> {
  for (;;) {
    const h = await store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name });
    mutate(h);
    try {
      return await store.update(HOST_KIND, h);
    } catch (error) {
      if ((error as Error).name !== 'ConflictError') throw error;
    }
  }
}

/** The host's Events in the order they were recorded. */
export async function hostEvents(store: ResourceStore, name: string): Promise<CoreEvent[]> {
  const list = await store.list<CoreEvent>(EventKind, { namespace: NAMESPACE });
  return (
    list.items
      .filter((e) => e.involvedObject.name === name && e.involvedObject.kind === 'BareMetalHost')
      // eventTime has microseconds; equal times fall back to the store's write order (the stores
      // used here count resourceVersions up).
      .sort(
        (a, b) =>
          (a.eventTime ?? a.firstTimestamp).localeCompare(b.eventTime ?? b.firstTimestamp) ||
          Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion),
      )
  );
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Placeholder boot assets (SIMULATION: not real kernels or configs). */
export function writeAssets(dir: string): void {
  const files: Record<string, string> = {
    vmlinuz: 'SIMULATION placeholder kernel\n',
    'initramfs.xz': 'SIMULATION placeholder initramfs\n',
    'controlplane.yaml': '# SIMULATION placeholder: not a Talos machine config\n',
    'worker.yaml': '# SIMULATION placeholder: not a Talos machine config\n',
    'rescue-vmlinuz': 'SIMULATION placeholder rescue kernel\n',
    'rescue-initrd': 'SIMULATION placeholder rescue initrd\n',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

/** SIMULATION: ipmi_sim's chassis state files as the machine's view of its BMC. */
export function ipmiSimView(ipmi: IpmiSimPeer): SimulatedBmcView {
  return {
    async read() {
      const s = ipmi.state();
      return { power: s.power, bootOncePxe: s.bootDevice === 'pxe' };
    },
    async consumeBootOnce() {
      await runIpmitool(ipmi, ['chassis', 'bootdev', 'none']);
    },
    async close() {},
  };
}

export const randomSuffix = () => randomBytes(3).toString('hex');
