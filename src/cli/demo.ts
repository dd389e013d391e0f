// `metalbox demo`: the seed's five hosts provisioned end to end, on this machine, with no cluster.
// Real: the embedded SQLite store, two Matchbox servers (mTLS gRPC + HTTP), the Matchbox sync and
// BareMetalHost controllers, the Redfish driver talking to sushy-tools. SIMULATED: the BMCs are
// sushy-tools fake systems and each server is a SimulatedMachine that walks the real HTTP boot
// chain when its emulated BMC powers it on, fetches its Talos config with the one-time token URL
// from its own loopback address, and publishes the real Talos event sequence over gRPC to the real
// event sink (the base config is a SIMULATION fake). Everything is torn down at the end.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { INSTALL_CONDITIONS } from '../controllers/baremetalhost/hooks.ts';
import { HOST_KIND, SECRET_KIND } from '../controllers/baremetalhost/kinds.ts';
import { addControllerFamilies } from '../controllers/index.ts';
import type { BareMetalHost } from '../crds/baremetalhost.ts';
import { kindFor } from '../crds/index.ts';
import type { TalosMachineConfig } from '../crds/talosmachineconfig.ts';
import { StoreEventRecorder } from '../runtime/events.ts';
import type { Logger } from '../runtime/logger.ts';
import { Manager } from '../runtime/manager.ts';
import type { Resource, ResourceKind } from '../runtime/resource.ts';
import { redfishSystemView } from '../sim/bmc-view.ts';
import { SimulatedMachine } from '../sim/machine.ts';
import { fakeBaseConfigSecret } from '../sim/talos-base-config.ts';
import { fetchConfig, talosEventReporter } from '../sim/talos-events.ts';
import { SqliteStore } from '../stores/sqlite.ts';
import { readManifests } from './manifest-files.ts';

const USAGE = `Usage: metalbox demo [--timeout <seconds>] [--manifests <dir>] [--verbose] [--lab]

Provisions the seed's five hosts (manifests/) end to end on this machine: the embedded SQLite store,
a real Matchbox pair, the real controllers, and SIMULATED servers behind sushy-tools' emulated
Redfish BMCs. Shows a live table, then tears everything down. Exit 0 when all five are provisioned.

--lab: the real-machine variant (npm run lab): three seed hosts as VMs with real firmware (OVMF,
SeaBIOS) in a boot lab of network namespaces, real DHCP/TFTP/iPXE, the Matchbox pair behind a
keepalived VIP, and real BMC emulators (sushy-tools, virtualbmc). Needs root; minutes under TCG.
`;

// The real-peer launchers live with the test harness (test/env/); the demo needs the same peers.
// Loaded by URL so `npm run build` (src/ only) does not pull the harness in.
interface CertFiles {
  certFile: string;
  keyFile: string;
}
interface MatchboxPeer {
  rpcEndpoint: string;
  httpURL: string;
  assetsPath: string;
}
interface MatchboxPair {
  a: MatchboxPeer;
  b: MatchboxPeer;
  pki: { ca: CertFiles; client: CertFiles };
  destroy(): Promise<void>;
}
interface SushyPeer {
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  systems: { name: string; uuid: string; macs: string[] }[];
  destroy(): Promise<void>;
}
const harness = (file: string) => new URL(`../../test/env/${file}`, import.meta.url).href;

const NAMESPACE = 'metalbox-system';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`${s}\n`);

/** Collects the controllers' warnings for the end-of-run report; the table is the live output. */
function demoLogger(verbose: boolean): Logger & { problems: string[]; eventSinkAddress?: string } {
  const problems: string[] = [];
  const logger: Logger & { problems: string[]; eventSinkAddress?: string } = {
    problems,
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: () => {},
  };
  const write = (level: string) => (obj: object, msg?: string) => {
    // The Talos family announces where its event sink listens; the simulated machines publish there.
    const sink = (obj as { eventSinkAddress?: unknown }).eventSinkAddress;
    if (msg === 'Talos config delivery ready' && typeof sink === 'string') logger.eventSinkAddress = sink;
    const line = `${level} ${msg ?? ''} ${JSON.stringify(obj)}`;
    if (level === 'warn' || level === 'error') problems.push(line);
    if (verbose && level !== 'debug') process.stderr.write(`${line}\n`);
  };
  Object.assign(logger, {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
  });
  return logger;
}

/** Placeholder boot assets: SIMULATION, not real kernels or Talos configs. */
function writeAssets(dir: string): void {
  const files: Record<string, string> = {
    vmlinuz: 'SIMULATION placeholder kernel\n',
    'initramfs.xz': 'SIMULATION placeholder initramfs\n',
    'controlplane.yaml':
      '# SIMULATION placeholder: not a Talos machine config (the Talos issue renders real ones)\n',
    'worker.yaml':
      '# SIMULATION placeholder: not a Talos machine config (the Talos issue renders real ones)\n',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

interface DemoHost {
  name: string;
  mac: string;
  uuid: string;
  originalBmc: string;
  /** SIMULATION: the machine's own source address (Linux accepts any 127.0.0.0/8 address). */
  address: string;
  machine?: SimulatedMachine;
}

function table(hosts: DemoHost[], objects: Map<string, BareMetalHost>, started: number): string[] {
  const rows = [
    ['HOST', 'STATE', 'BMC POWER', 'ATTEMPT', 'MACHINE (SIMULATION)', 'TALOS', 'BOOTS (SIMULATION)', 'ERROR'],
  ];
  for (const h of hosts) {
    const s = objects.get(h.name)?.status;
    const boots = (h.machine?.boots ?? []).map((b) => (b.answer ? `${b.via}→${b.answer}` : b.via));
    rows.push([
      h.name,
      s?.provisioning?.state ?? '-',
      s?.poweredOn === undefined ? '-' : s.poweredOn ? 'on' : 'off',
      s?.provisioning?.attempt === undefined ? '-' : String(s.provisioning.attempt),
      `${h.machine?.phase ?? '-'} @${h.address}`,
      talosPhase(s),
      boots.length ? boots.slice(-2).join(', ') : '-',
      s?.errorType
        ? `${s.errorType}: ${(s.errorMessage ?? '').slice(0, 60)}`
        : s?.operationalStatus === 'delayed'
          ? 'delayed'
          : '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  lines[0] = bold(lines[0]!);
  lines.push(`elapsed ${Math.round((Date.now() - started) / 1000)} s`);
  return lines;
}

/** What the event sink last saw of the host's Talos, from its install conditions. */
function talosPhase(s: BareMetalHost['status']): string {
  const on = (type: string) =>
    s?.conditions?.some((c) => c.type === type && c.status === 'True' && !c.reason?.startsWith('Simulated'));
  if (on(INSTALL_CONDITIONS.ready)) return 'ready';
  if (on(INSTALL_CONDITIONS.bootedFromDisk)) return 'booted from disk';
  if (on(INSTALL_CONDITIONS.installed)) return 'installed';
  if (s?.lastObservedBoot?.phase === 'installing') return 'installing';
  if (on(INSTALL_CONDITIONS.configDelivered))
    return `config fetched by ${s?.talos?.configFetchedFrom ?? '?'}`;
  return s?.talos?.tokenHash ? 'token minted' : '-';
}

export async function run(args: string[]): Promise<number> {
  let values: { timeout?: string; manifests?: string; verbose?: boolean; lab?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        timeout: { type: 'string' },
        manifests: { type: 'string' },
        verbose: { type: 'boolean' },
        lab: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`metalbox demo: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const timeoutS = Number(values.timeout ?? 300);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
    process.stderr.write('metalbox demo: --timeout must be a positive number of seconds\n');
    return 2;
  }
  const manifestsDir = values.manifests ?? new URL('../../manifests', import.meta.url).pathname;
  if (values.lab) {
    const { runLabDemo } = (await import(new URL('../../test/lab/demo.ts', import.meta.url).href)) as {
      runLabDemo(opts: { timeoutS: number }): Promise<number>;
    };
    return runLabDemo({ timeoutS: Number(values.timeout ?? 900) });
  }

  say(bold('metalbox demo: the seed fleet, provisioned end to end on this machine'));
  say('SIMULATION: the BMCs are sushy-tools fake systems and the servers are simulated machines;');
  say('            the store, Matchbox servers, controllers, Talos config server and event sink, and the');
  say('            BMC/Matchbox/Talos protocols are real; the Talos base config is a fake.\n');

  const cleanups: { what: string; run: () => Promise<void> }[] = [];
  const teardown = async () => {
    for (const c of cleanups.reverse()) {
      await c.run().catch((error: unknown) => {
        process.stderr.write(`metalbox demo: teardown of ${c.what} failed: ${(error as Error).message}\n`);
      });
    }
  };
  const interrupted = new Promise<'interrupted'>((resolve) => {
    process.once('SIGINT', () => resolve('interrupted'));
  });

  try {
    // 1. Manifests: BareMetalHosts, their BMC Secrets, Matchbox profiles, the Talos config.
    const { documents, problems } = readManifests([manifestsDir]);
    if (problems.length > 0) {
      for (const p of problems) process.stderr.write(`metalbox demo: ${p.source}: ${p.message}\n`);
      return 1;
    }
    const objects = documents.map((d) => d.object as Resource);
    const seedHosts = objects.filter((o) => o.kind === 'BareMetalHost') as (BareMetalHost & Resource)[];
    const hosts: DemoHost[] = seedHosts.map((h, i) => ({
      name: h.metadata.name!,
      mac: (h.spec.bootMACAddress ?? '').toLowerCase().replaceAll('-', ':'),
      uuid: `6d657461-6c62-4f78-8000-${(i + 1).toString(16).padStart(12, '0')}`,
      originalBmc: h.spec.bmc.address,
      address: `127.0.0.${11 + i}`,
    }));

    // 2. Real peers: two Matchbox servers (one PKI) and the Redfish emulator with one system per host.
    say('starting two Matchbox servers and sushy-tools (Redfish emulator) ...');
    const { startMatchboxPair } = (await import(harness('matchbox.ts'))) as {
      startMatchboxPair(): Promise<MatchboxPair>;
    };
    const { startSushy } = (await import(harness('sushy.ts'))) as {
      startSushy(opts: {
        systems: { name: string; uuid: string; macs: string[] }[];
        name?: string;
      }): Promise<SushyPeer>;
    };
    const pair = await startMatchboxPair();
    cleanups.push({ what: 'Matchbox servers', run: () => pair.destroy() });
    for (const peer of [pair.a, pair.b]) writeAssets(peer.assetsPath);
    const sushy = await startSushy({
      name: 'demo-bmcs',
      systems: hosts.map((h) => ({ name: h.name, uuid: h.uuid, macs: [h.mac] })),
    });
    cleanups.push({ what: 'sushy-tools', run: () => sushy.destroy() });
    say(`  matchbox-a  gRPC ${pair.a.rpcEndpoint}  HTTP ${pair.a.httpURL}`);
    say(`  matchbox-b  gRPC ${pair.b.rpcEndpoint}  HTTP ${pair.b.httpURL}`);
    say(`  sushy-tools ${sushy.url} (${hosts.length} fake systems)`);

    // 3. The embedded store and the controller config.
    const dir = mkdtempSync(join(tmpdir(), 'metalbox-demo-'));
    cleanups.push({ what: 'temp dir', run: async () => rmSync(dir, { recursive: true, force: true }) });
    const store = await SqliteStore.open(join(dir, 'store'), { durable: false });
    cleanups.push({ what: 'embedded store', run: () => store.close() });
    const tls = {
      caFile: pair.pki.ca.certFile,
      certFile: pair.pki.client.certFile,
      keyFile: pair.pki.client.keyFile,
    };
    const config = {
      matchbox: {
        endpoints: [
          { name: 'mgmt-01', endpoint: pair.a.rpcEndpoint, httpURL: pair.a.httpURL, tls },
          { name: 'mgmt-02', endpoint: pair.b.rpcEndpoint, httpURL: pair.b.httpURL, tls },
        ],
        driftScanIntervalSeconds: 60,
        verifyBootAnswers: true,
      },
      baremetalhost: {
        waitPollSeconds: 0.5,
        powerPollSeconds: 5,
        powerSettleSeconds: 15,
        provisioningTimeoutSeconds: 180,
        errorBackoff: { baseSeconds: 2, capSeconds: 20 },
      },
      // The real config server and event sink, on free loopback ports.
      talos: {
        configServer: { listen: '127.0.0.1:0' },
        eventSink: { listen: '127.0.0.1:0' },
        tokenTTLSeconds: 600,
      },
    };
    const configFile = join(dir, 'controller.yaml');
    writeFileSync(configFile, stringify(config));
    say(`  store: embedded SQLite store in ${join(dir, 'store')}; controller config: ${configFile}\n`);

    // 4. Apply manifests/, pointed at the local emulator and Matchbox.
    const configUrl = `${pair.a.httpURL}/assets`;
    let applied = 0;
    for (const obj of objects) {
      if (obj.kind === 'Namespace') continue; // the embedded store has no namespace objects
      if (obj.kind === 'MatchboxGroup') continue; // see below
      const copy = structuredClone(obj) as Resource & Record<string, unknown>;
      if (copy.kind === 'Secret') {
        copy.stringData = { username: sushy.username, password: sushy.password };
        delete copy.data;
      }
      if (copy.kind === 'BareMetalHost') {
        const h = copy as unknown as BareMetalHost;
        const demo = hosts.find((x) => x.name === h.metadata.name)!;
        h.spec.bmc.address = `redfish+http://${sushy.host}:${sushy.port}/redfish/v1/Systems/${demo.uuid}`;
      }
      if (copy.kind === 'MatchboxProfile') {
        const spec = copy.spec as { args?: string[] };
        spec.args = spec.args?.map((a) =>
          a.replace(/^talos\.config=https?:\/\/[^/]+\/assets/, `talos.config=${configUrl}`),
        );
      }
      const kind: ResourceKind | undefined =
        copy.kind === 'Secret'
          ? SECRET_KIND
          : (() => {
              const k = kindFor(copy.apiVersion, copy.kind);
              return k
                ? { group: k.group, version: k.version, kind: k.kind, plural: k.plural, namespaced: true }
                : undefined;
            })();
      if (!kind) continue;
      await store.create(kind, copy);
      applied++;
      if (copy.kind === 'TalosMachineConfig') {
        // The base config is a Secret outside Git (it holds the cluster's keys): a SIMULATION fake here.
        const spec = (copy as unknown as TalosMachineConfig).spec;
        await store.create(
          SECRET_KIND,
          fakeBaseConfigSecret({
            namespace: copy.metadata.namespace ?? NAMESPACE,
            name: spec.baseConfigSecretRef.name,
            clusterName: spec.clusterName ?? 'mycluster',
            ...(spec.baseConfigSecretRef.controlplaneKey
              ? { controlplaneKey: spec.baseConfigSecretRef.controlplaneKey }
              : {}),
            ...(spec.baseConfigSecretRef.workerKey ? { workerKey: spec.baseConfigSecretRef.workerKey } : {}),
          }),
        );
        applied++;
      }
    }
    say(`applied ${applied} objects from ${manifestsDir}:`);
    say(
      '  - BMC addresses and credentials rewritten to the local emulator (the IPMI workers are emulated over Redfish);',
    );
    say(
      `  - profile talos.config URLs pointed at ${configUrl} (replaced per host by the one-time token URL);`,
    );
    say('  - a SIMULATION fake base-config Secret for the TalosMachineConfig (no real keys);');
    say(
      "  - the seed's static MatchboxGroups are not applied (manifests/static-groups/): each BareMetalHost",
    );
    say(
      '    owns the group for its MAC (a second group selecting the same MAC is reported as a Conflict).\n',
    );

    // 5. The controllers, in this process.
    const logger = demoLogger(values.verbose === true);
    const registry = new Registry();
    const events = new StoreEventRecorder({ store, component: 'metalbox-demo', logger });
    const manager = new Manager({ store, registry, logger, namespace: NAMESPACE, shutdownTimeoutMs: 10_000 });
    const families = await addControllerFamilies(manager, {
      store,
      events,
      logger,
      registry,
      namespace: NAMESPACE,
      config,
    });
    cleanups.push({
      what: 'controllers',
      run: async () => {
        await manager.stop();
        await families.stop();
        await events.flush();
      },
    });
    await manager.start();
    const sink = logger.eventSinkAddress;
    if (!sink) throw new Error('the Talos family did not start its event sink');
    say(
      `Talos event sink ${sink}; each SIMULATED machine fetches its config and publishes from its own address\n`,
    );

    // 6. One SIMULATED machine per host, watching its emulated BMC.
    for (const h of hosts) {
      h.machine = new SimulatedMachine({
        name: h.name,
        mac: h.mac,
        uuid: h.uuid,
        bmc: redfishSystemView({
          baseUrl: sushy.url,
          systemPath: `/redfish/v1/Systems/${h.uuid}`,
          username: sushy.username,
          password: sushy.password,
        }),
        matchboxUrls: [pair.a.httpURL, pair.b.httpURL],
        // Talos's own reporting: the event sequence over gRPC, from the address that fetched the config.
        reporter: talosEventReporter({ sink, localAddress: h.address, hostname: `talos-${h.name}` }),
        fetchConfig: (url) => fetchConfig(url, { localAddress: h.address }),
        pollMs: 500,
        installMs: 2000,
        logger,
      });
      h.machine.start();
      cleanups.push({ what: `simulated machine ${h.name}`, run: () => h.machine!.stop() });
    }

    // 7. Live progress until every host is provisioned and running from disk.
    const started = Date.now();
    const deadline = started + timeoutS * 1000;
    const tty = process.stdout.isTTY === true;
    let drawn = 0;
    let lastFrame = '';
    let outcome: 'done' | 'timeout' | 'interrupted' = 'timeout';
    const current = new Map<string, BareMetalHost>();
    while (Date.now() < deadline) {
      for (const h of hosts) {
        current.set(
          h.name,
          await store.get<BareMetalHost & Resource>(HOST_KIND, { namespace: NAMESPACE, name: h.name }),
        );
      }
      const lines = table(hosts, current, started);
      const frame = lines.slice(0, -1).join('\n');
      if (tty) {
        if (drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
        process.stdout.write(`${lines.join('\n')}\n`);
        drawn = lines.length;
      } else if (frame !== lastFrame) {
        process.stdout.write(`${lines.join('\n')}\n\n`);
      }
      lastFrame = frame;
      const done = hosts.every(
        (h) =>
          current.get(h.name)?.status?.provisioning?.state === 'provisioned' &&
          h.machine?.phase === 'running-disk',
      );
      if (done) {
        outcome = 'done';
        break;
      }
      const tick = await Promise.race([new Promise((r) => setTimeout(r, 1000, 'tick')), interrupted]);
      if (tick === 'interrupted') {
        outcome = 'interrupted';
        break;
      }
    }

    const seconds = Math.round((Date.now() - started) / 1000);
    if (outcome === 'done') {
      say(`\nall ${hosts.length} hosts provisioned in ${seconds} s:`);
      for (const h of hosts) {
        const s = current.get(h.name)?.status;
        const answers = await Promise.all(
          [pair.a, pair.b].map(async (p) => {
            const res = await fetch(`${p.httpURL}/ipxe?mac=${h.mac.replaceAll(':', '-')}`);
            const body = await res.text();
            return body.includes('/generic?mac=') ? 'boot-from-disk' : `HTTP ${res.status}`;
          }),
        );
        say(
          `  ${h.name.padEnd(10)} attempt ${s?.provisioning?.attempt}, config fetched by ${s?.talos?.configFetchedFrom ?? '?'}, ` +
            `installed: ${s?.conditions?.find((c) => c.type === INSTALL_CONDITIONS.installed)?.reason ?? '?'}, ` +
            `installs seen by the SIMULATED machine: ${h.machine?.installs}, ` +
            `Matchbox answers now: ${answers.join(' / ')}`,
        );
      }
      say('\ntearing down ...');
      await teardown();
      say('done.');
      return 0;
    }
    process.stderr.write(
      outcome === 'interrupted'
        ? '\nmetalbox demo: interrupted; tearing down\n'
        : `\nmetalbox demo: not every host was provisioned within ${timeoutS} s (see the table above)\n`,
    );
    for (const line of logger.problems.slice(-10)) process.stderr.write(`  ${line.slice(0, 400)}\n`);
    await teardown();
    return 1;
  } catch (error) {
    process.stderr.write(`metalbox demo: ${(error as Error).message}\n`);
    await teardown();
    return 1;
  }
}
