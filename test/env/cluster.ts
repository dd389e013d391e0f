// A real single-node Kubernetes for tests that need Pods: etcd, kube-apiserver, controller-manager,
// scheduler, containerd + runc, kubelet, kube-proxy and the CNI bridge, all in a network namespace
// of the cluster's own and a private mount namespace (see cluster-node.sh for what that hides from
// the machine). The host reaches the node over a veth pair on a /30 of 10.88.x.0 (host .1, node
// .2); nothing listens on the machine's own interfaces. Pods reach the host end (.1) through the
// bridge's masquerade, so peers a test binds there (Matchbox, a BMC emulator) are reachable from
// the Pod network. Torn down on stop(), on test-process exit and on Ctrl-C (cluster-down.sh).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, fetch as undiciFetch } from 'undici';
import { peerBinaries, peerBinary, scratchDir } from './peers.ts';
import { createCA } from './pki.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

const run = promisify(execFile);
const here = fileURLToPath(new URL('.', import.meta.url));
const SERVICE_CIDR = '10.96.0.0/24';
const POD_CIDR = '10.244.0.0/24';
const NODE_NAME = 'metalbox-node';

export interface ClusterPeer {
  /** https://<node IP>:6443 */
  url: string;
  /** The node's address, on the host's veth pair (NodePorts answer here). */
  nodeIP: string;
  /** The host's end of the veth pair: what Pods reach the machine's test peers at. */
  hostIP: string;
  nodeName: string;
  caData: string;
  kubeConfig(): KubeConfig;
  /** Path of an admin kubeconfig file, for kubectl and helm. */
  kubeconfigFile: string;
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** `ctr images import` into the kubelet's containerd namespace (k8s.io). */
  importImage(archive: string): Promise<void>;
  /** Runs a command inside the node's network and mount namespaces. */
  exec(command: string, args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** The last lines of one component's log (etcd, kube-apiserver, kubelet, containerd, ...). */
  logTail(component: string, lines?: number): string;
  stop(): Promise<void>;
}

/** The /30 third octet: one the machine does not already use. */
function freeSubnet(): number {
  const used = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  for (let i = 0; i < 50; i++) {
    const octet = 1 + ((randomBytes(1)[0] ?? 0) % 250);
    if (!used.includes(`10.88.${octet}.`)) return octet;
  }
  throw new Error('no free 10.88.x.0/30 for the test cluster');
}

const liveTeardowns = new Set<() => void>();
let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const teardown of liveTeardowns) teardown();
  });
}

export async function startCluster(): Promise<ClusterPeer> {
  installExitHooks();
  const peers = peerBinaries();
  const scratch = scratchDir('cluster');
  const w = scratch.dir;
  const id = randomBytes(3).toString('hex');
  const netns = `metalbox-${id}`;
  const hostVeth = `mbxh${id}`;
  const nodeVeth = `mbxn${id}`;
  const cgroupRoot = `metalbox-${id}`;
  const octet = freeSubnet();
  const hostIP = `10.88.${octet}.1`;
  const nodeIP = `10.88.${octet}.2`;
  const url = `https://${nodeIP}:6443`;

  const teardownSync = () => {
    execFileSync('bash', [join(here, 'cluster-down.sh'), netns, cgroupRoot, hostVeth], { stdio: 'ignore' });
    scratch.remove();
  };
  liveTeardowns.add(teardownSync);

  // --- PKI and identities --------------------------------------------------------------------
  const pki = join(w, 'pki');
  mkdirSync(pki);
  mkdirSync(join(w, 'logs'));
  const ca = createCA(pki, 'ca');
  ca.issue({
    name: 'apiserver',
    commonName: 'kube-apiserver',
    usage: 'server',
    subjectAltNames: [
      `IP:${nodeIP}`,
      'IP:10.96.0.1',
      'IP:127.0.0.1',
      'DNS:localhost',
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'DNS:kubernetes.default.svc.cluster.local',
    ],
  });
  ca.issue({ name: 'sa-signer', commonName: 'sa-signer', usage: 'client' });
  // `createCA` names the CA files after its common name; the components want ca.crt.
  writeFileSync(join(pki, 'ca.crt'), ca.cert);
  const token = randomBytes(16).toString('hex');
  writeFileSync(join(pki, 'tokens.csv'), `${token},admin,admin-uid,"system:masters"\n`);

  const kubeConfig = () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: url, caData: Buffer.from(ca.cert).toString('base64') }],
      users: [{ name: 'admin', token }],
      contexts: [{ name: 'admin', cluster: 'test', user: 'admin' }],
      currentContext: 'admin',
    });
    return kc;
  };
  const kubeconfigFile = join(w, 'admin.kubeconfig');
  writeFileSync(kubeconfigFile, kubeConfig().exportConfig());

  // --- component configuration ---------------------------------------------------------------
  writeFileSync(
    join(w, 'env'),
    Object.entries({
      NODE_IP: nodeIP,
      NODE_NAME,
      SERVICE_CIDR,
      ETCD: peers.etcd,
      KUBE_APISERVER: peerBinary('kubeApiserver'),
      KUBE_BIN: peers.kubeNodeDir,
      CONTAINERD: peers.containerd,
      PAUSE_IMAGE: peers.pauseImage,
      ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '',
    })
      .map(([k, v]) => `${k}=${JSON.stringify(v)}\n`)
      .join(''),
  );
  const cniDir = join(w, 'cni');
  mkdirSync(cniDir);
  writeFileSync(
    join(cniDir, '10-metalbox.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'metalbox-test',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  writeFileSync(
    join(w, 'containerd.toml'),
    `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[${cri}]
  sandbox_image = "${peers.pauseImageName}"
  # Lowering oom_score_adj (the pause container asks for -998) needs CAP_SYS_RESOURCE, which a
  # sandboxed CI runner may not have: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[${cri}.containerd.runtimes.runc.options]
  BinaryName = "${peers.runc}"
  SystemdCgroup = false
[${cri}.cni]
  bin_dir = "${peers.cniBinDir}"
  conf_dir = "${cniDir}"
`,
  );
  writeFileSync(
    join(w, 'kubelet.yaml'),
    `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The machine may run cgroup v1 (hybrid); 1.36 refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
# Every Pod cgroup sits under this one, which cluster-down.sh empties and removes.
cgroupRoot: /${cgroupRoot}
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: ${nodeIP}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
resolvConf: ""
maxPods: 30
# Images are imported, never pulled: never collect them, and never evict for a full shared disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
shutdownGracePeriod: 0s
`,
  );
  writeFileSync(
    join(w, 'kube-proxy.yaml'),
    `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: ${kubeconfigFile}
hostnameOverride: ${NODE_NAME}
clusterCIDR: ${POD_CIDR}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Zero leaves the machine-wide conntrack tunables alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`,
  );

  // --- network namespace, veth pair and the Pod cgroup root ----------------------------------
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let node: ManagedProcess | undefined;
  const agent = new Agent({ connect: { ca: ca.cert } });
  const logTail = (component: string, lines = 40) => {
    try {
      return readFileSync(join(w, 'logs', `${component}.log`), 'utf8')
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    await node?.stop(2000);
    await run('bash', [join(here, 'cluster-down.sh'), netns, cgroupRoot, hostVeth]);
    liveTeardowns.delete(teardownSync);
    await agent.close();
    scratch.remove();
  };

  const request: ClusterPeer['request'] = async (method, path, body) => {
    const res = await undiciFetch(`${url}${path}`, {
      method,
      dispatcher: agent,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (/readyz answers "ok")
    }
    return { status: res.status, body: parsed };
  };

  try {
    ip('netns', 'add', netns);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nodeVeth);
    ip('link', 'set', nodeVeth, 'netns', netns);
    ip('addr', 'add', `${hostIP}/30`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    ip('-n', netns, 'addr', 'add', `${nodeIP}/30`, 'dev', nodeVeth);
    ip('-n', netns, 'link', 'set', nodeVeth, 'up');
    for (const hierarchy of cgroupHierarchies()) {
      const dir = join('/sys/fs/cgroup', hierarchy, cgroupRoot);
      mkdirSync(dir, { recursive: true });
      if (hierarchy === 'cpuset') {
        // A new v1 cpuset starts with no CPUs and no memory nodes: inherit the parent's.
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          writeFileSync(join(dir, file), readFileSync(join('/sys/fs/cgroup/cpuset', file)));
        }
      }
    }

    node = startProcess({
      name: 'cluster-node',
      command: 'nsenter',
      args: [
        `--net=/run/netns/${netns}`,
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'bash',
        join(here, 'cluster-node.sh'),
        w,
      ],
      logDir: join(w, 'logs'),
    });
    const supervisor = node;
    const context = () =>
      ['cluster-node', 'kube-apiserver', 'containerd', 'kubelet']
        .map((c) => `--- ${c}\n${logTail(c, 15)}`)
        .join('\n');
    const abortIf = () => (supervisor.isRunning() ? undefined : 'cluster-node.sh exited');
    await waitFor(async () => (await request('GET', '/readyz')).status === 200, {
      what: 'the test cluster apiserver /readyz',
      timeoutMs: 120_000,
      intervalMs: 250,
      context,
      abortIf,
    });
    await waitFor(
      async () => {
        const res = await request('GET', `/api/v1/nodes/${NODE_NAME}`);
        const conditions = (res.body as { status?: { conditions?: { type: string; status: string }[] } })
          .status?.conditions;
        return conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      },
      { what: `node ${NODE_NAME} Ready`, timeoutMs: 120_000, intervalMs: 500, context, abortIf },
    );
    // Pods of a namespace need its default ServiceAccount, and kube-root-ca.crt for their token.
    await waitFor(
      async () =>
        (await request('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200 &&
        (await request('GET', '/api/v1/namespaces/default/configmaps/kube-root-ca.crt')).status === 200,
      { what: 'the controller-manager to publish the default ServiceAccount', timeoutMs: 60_000, context },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const exec: ClusterPeer['exec'] = async (command, args) => {
    const pid = node?.pid;
    if (pid === undefined) throw new Error('the test cluster is not running');
    // nsenter and unshare exec, so the spawned pid is cluster-node.sh's shell, in both namespaces.
    return await run('nsenter', ['-t', String(pid), '--net', '--mount', command, ...args], {
      maxBuffer: 16 * 1024 * 1024,
    });
  };

  return {
    url,
    nodeIP,
    hostIP,
    nodeName: NODE_NAME,
    caData: ca.cert,
    kubeConfig,
    kubeconfigFile,
    request,
    async importImage(archive) {
      await exec('ctr', [
        '--address',
        '/run/containerd/containerd.sock',
        '-n',
        'k8s.io',
        'images',
        'import',
        archive,
      ]);
    },
    exec,
    logTail,
    stop,
  };
}

/** The cgroup v1 hierarchies the kubelet's cgroupfs driver uses (a v2-only machine has none). */
function cgroupHierarchies(): string[] {
  const wanted = [
    'cpu',
    'cpuacct',
    'cpuset',
    'memory',
    'devices',
    'freezer',
    'blkio',
    'pids',
    'systemd',
    'hugetlb',
  ];
  return wanted.filter((h) => existsSync(join('/sys/fs/cgroup', h, 'cgroup.procs')));
}
