// The seed fleet in standalone mode: manifests/ applied with `metalbox apply` to etcd, the real
// controllers (elected through etcd) on the store `--store etcd://…` opens, a real Matchbox pair
// and sushy-tools; then the same on a kube-apiserver, and both end states compared host by host.
// SIMULATED, as in `metalbox demo`: the BMCs are sushy-tools fake systems and each server is a
// SimulatedMachine walking the real boot chain; BMC addresses, credentials and the profiles'
// talos.config URL are pointed at the local peers, and the seed's static MatchboxGroups are left
// out (each BareMetalHost owns the group for its MAC).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { parseAllDocuments, stringify } from 'yaml';
import { main as apply } from '../../../src/cli/apply.ts';
import { electorFor, openStore, parseStoreFlag, type StoreFlagValues } from '../../../src/cli/store-flag.ts';
import { GROUP_KIND, HOST_KIND, PROFILE_KIND } from '../../../src/controllers/baremetalhost/kinds.ts';
import { addControllerFamilies } from '../../../src/controllers/index.ts';
import type { BareMetalHost } from '../../../src/crds/baremetalhost.ts';
import { allCrds } from '../../../src/crds/crd.ts';
import { StoreEventRecorder } from '../../../src/runtime/events.ts';
import { AlwaysLeader } from '../../../src/runtime/leader.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { Manager } from '../../../src/runtime/manager.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import { redfishSystemView } from '../../../src/sim/bmc-view.ts';
import { SimulatedMachine } from '../../../src/sim/machine.ts';
import { storeInstallReporter } from '../../../src/sim/reporter.ts';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';
import { type CrdLike, startKubeApiserver } from '../../env/kube.ts';
import { startMatchboxPair } from '../../env/matchbox.ts';
import { scratchDir } from '../../env/peers.ts';
import { startSushy } from '../../env/sushy.ts';
import { waitFor } from '../../env/wait.ts';
import { capturingIo } from '../../fixtures/capturing-io.ts';

const NAMESPACE = 'metalbox-system';
const MANIFESTS = fileURLToPath(new URL('../../../manifests/', import.meta.url));
type Host = BareMetalHost & Resource;

let etcd: EtcdPeer;
const scratch = scratchDir('demo-fleet');
before(async () => {
  etcd = await startEtcd({ name: 'etcd-demo-fleet' });
});
after(async () => {
  await etcd?.stop();
  scratch.remove();
});

interface HostEnd {
  state?: string;
  attempt?: number;
  bootTarget?: string;
  profile?: string;
  poweredOn?: boolean;
  operationalStatus?: string;
  errorType?: string;
  conditions: string[];
  installs: number;
  machine: string;
  matchbox: string[];
}

/** Provisions the seed fleet on one store; returns each host's end state and the Matchbox objects' sync. */
async function provisionSeedFleet(
  label: string,
  flags: StoreFlagValues,
): Promise<{ hosts: Record<string, HostEnd>; matchbox: string[] }> {
  const seed = readdirSync(MANIFESTS)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(MANIFESTS, f), 'utf8')).map((d) => d.toJS() as Resource),
    );
  const hosts = seed
    .filter((o) => o.kind === 'BareMetalHost')
    .map((h, i) => ({
      name: h.metadata.name,
      mac: ((h as Host).spec.bootMACAddress ?? '').toLowerCase(),
      uuid: `6d657461-6c62-4f78-8000-${(i + 1).toString(16).padStart(12, '0')}`,
    }));
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const pair = await startMatchboxPair();
    cleanups.push(() => pair.destroy());
    for (const peer of [pair.a, pair.b]) {
      for (const [file, text] of Object.entries({
        vmlinuz: 'SIMULATION kernel\n',
        'initramfs.xz': 'SIMULATION initramfs\n',
        'controlplane.yaml': '# SIMULATION\n',
        'worker.yaml': '# SIMULATION\n',
      }))
        writeFileSync(join(peer.assetsPath, file), text);
    }
    const sushy = await startSushy({
      name: `sushy-${label}`,
      systems: hosts.map((h) => ({ name: h.name, uuid: h.uuid, macs: [h.mac] })),
    });
    cleanups.push(() => sushy.destroy());

    // manifests/, pointed at the local emulator and Matchbox, applied with the CLI.
    const dir = join(scratch.dir, `manifests-${label}`);
    mkdirSync(dir);
    const rewritten = seed
      .filter((o) => o.kind !== 'MatchboxGroup')
      .map((o) => {
        const copy = structuredClone(o) as Resource & Record<string, unknown>;
        if (copy.kind === 'Secret') copy.stringData = { username: sushy.username, password: sushy.password };
        if (copy.kind === 'BareMetalHost') {
          const h = copy as unknown as Host;
          const uuid = hosts.find((x) => x.name === h.metadata.name)!.uuid;
          h.spec.bmc.address = `redfish+http://${sushy.host}:${sushy.port}/redfish/v1/Systems/${uuid}`;
        }
        if (copy.kind === 'MatchboxProfile') {
          const spec = copy.spec as { args?: string[] };
          spec.args = spec.args?.map((a) =>
            a.replace(/^talos\.config=https?:\/\/[^/]+\/assets/, `talos.config=${pair.a.httpURL}/assets`),
          );
        }
        return copy;
      });
    writeFileSync(join(dir, 'fleet.yaml'), rewritten.map((o) => stringify(o)).join('---\n'));
    const storeArgs = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
    const captured = capturingIo();
    const code = await apply(['-f', dir, ...storeArgs], captured.io);
    assert.equal(code, 0, `${label}: apply failed: ${captured.err()}`);
    assert.equal(captured.out().match(/ created$/gm)?.length, rewritten.length, captured.out());

    // The controllers as `metalbox controller --store …` runs them.
    const opened = await openStore(parseStoreFlag(flags.store!), flags);
    cleanups.push(() => opened.close());
    const store = opened.store;
    const registry = new Registry();
    const logged: string[] = [];
    const logger = {
      ...silentLogger,
      warn: (obj: object, msg?: string) => logged.push(`warn ${msg} ${JSON.stringify(obj)}`),
      error: (obj: object, msg?: string) => logged.push(`error ${msg} ${JSON.stringify(obj)}`),
    };
    const events = new StoreEventRecorder({ store, component: 'metalbox-controller', logger });
    const config = {
      matchbox: {
        endpoints: ['a', 'b'].map((x) => {
          const peer = x === 'a' ? pair.a : pair.b;
          return {
            name: `mgmt-0${x === 'a' ? 1 : 2}`,
            endpoint: peer.rpcEndpoint,
            httpURL: peer.httpURL,
            tls: {
              caFile: pair.pki.ca.certFile,
              certFile: pair.pki.client.certFile,
              keyFile: pair.pki.client.keyFile,
            },
          };
        }),
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
    };
    // Standalone replicas elect through etcd; on kube one replica runs (the Lease elector has its own tests).
    const elector =
      opened.spec.type === 'etcd'
        ? await electorFor(opened, { identity: `${label}-${randomBytes(3).toString('hex')}` })
        : new AlwaysLeader(label);
    const manager = new Manager({
      store,
      registry,
      elector,
      logger,
      namespace: NAMESPACE,
      shutdownTimeoutMs: 10_000,
    });
    const families = await addControllerFamilies(manager, {
      store,
      events,
      logger,
      registry,
      namespace: NAMESPACE,
      config,
    });
    cleanups.push(async () => {
      await manager.stop();
      await families.stop();
      await events.flush();
    });
    await manager.start();

    const machines = new Map<string, SimulatedMachine>();
    for (const h of hosts) {
      const machine = new SimulatedMachine({
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
        reporter: storeInstallReporter(store, { namespace: NAMESPACE, name: h.name }),
        pollMs: 500,
        installMs: 2000,
      });
      machine.start();
      machines.set(h.name, machine);
      cleanups.push(() => machine.stop());
    }

    let snapshot = '';
    await waitFor(
      async () => {
        const states = [];
        for (const h of hosts) {
          const host = await store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name: h.name });
          states.push({ name: h.name, machine: machines.get(h.name)?.phase, status: host.status });
        }
        snapshot = JSON.stringify(states);
        return states.every(
          (x) => x.status?.provisioning?.state === 'provisioned' && x.machine === 'running-disk',
        );
      },
      {
        what: `${label}: all five hosts provisioned and running from disk`,
        timeoutMs: 300_000,
        intervalMs: 1000,
        context: () => `${snapshot}\n${logged.slice(-20).join('\n')}`,
      },
    );

    const end: Record<string, HostEnd> = {};
    for (const h of hosts) {
      const s = (await store.get<Host>(HOST_KIND, { namespace: NAMESPACE, name: h.name })).status ?? {};
      const machine = machines.get(h.name)!;
      end[h.name] = {
        state: s.provisioning?.state,
        attempt: s.provisioning?.attempt,
        bootTarget: s.provisioning?.bootTarget,
        profile: s.provisioning?.profile,
        poweredOn: s.poweredOn,
        operationalStatus: s.operationalStatus,
        errorType: s.errorType,
        // PowerInSync appears at the first power poll after provisioning: when is a matter of timing.
        conditions: (s.conditions ?? [])
          .filter((c) => c.type !== 'PowerInSync')
          .map((c) => `${c.type}=${c.status}/${c.reason}`)
          .sort(),
        installs: machine.installs,
        machine: machine.phase,
        matchbox: await Promise.all(
          [pair.a, pair.b].map(async (p) => {
            const body = await (await fetch(`${p.httpURL}/ipxe?mac=${h.mac.replaceAll(':', '-')}`)).text();
            return body.includes('/generic?mac=')
              ? 'boot-from-disk'
              : body.includes('talos.config=')
                ? 'install'
                : 'other';
          }),
        ),
      };
    }
    const synced = (o: Resource) =>
      `${o.kind} ${o.metadata.name} Synced=${(o.status as { conditions?: { type: string; status: string }[] })?.conditions?.find((c) => c.type === 'Synced')?.status}`;
    const matchbox = [
      ...(await store.list(PROFILE_KIND, { namespace: NAMESPACE })).items.map(synced),
      ...(await store.list(GROUP_KIND, { namespace: NAMESPACE })).items.map(synced),
    ].sort();
    return { hosts: end, matchbox };
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  }
}

test('the seed manifests applied with metalbox apply to etcd provision the demo fleet with the same end states as on Kubernetes', async (t) => {
  const kube = await startKubeApiserver();
  let onKube: Awaited<ReturnType<typeof provisionSeedFleet>>;
  try {
    await kube.installCRDs(allCrds() as unknown as CrdLike[]);
    onKube = await provisionSeedFleet('kube', { store: `kube:${kube.kubeconfigFile()}` });
  } finally {
    await kube.stop();
  }
  const keyFile = join(scratch.dir, 'keys.yaml');
  writeFileSync(keyFile, `keys: [{name: k1, secret: ${randomBytes(32).toString('base64')}}]\n`);
  chmodSync(keyFile, 0o600);
  const onEtcd = await provisionSeedFleet('etcd', {
    store: `etcd://${etcd.endpoint}/demo-fleet`,
    'encryption-key-file': keyFile,
  });
  t.diagnostic(`etcd end state: ${JSON.stringify(onEtcd)}`);
  for (const [name, h] of Object.entries(onEtcd.hosts)) {
    assert.equal(h.state, 'provisioned', name);
    assert.equal(h.installs, 1, `${name} installed once`);
    assert.deepEqual(h.matchbox, ['boot-from-disk', 'boot-from-disk'], name);
  }
  assert.deepEqual(onEtcd, onKube);
});
