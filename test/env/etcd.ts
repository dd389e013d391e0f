// Throw-away etcd (Debian etcd-server) on free loopback ports with a temp data dir: one member
// (optionally with TLS for clients), or a cluster of several members whose processes a test can
// kill, freeze and restart one by one.

import { join } from 'node:path';
import { peerBinary, scratchDir } from './peers.ts';
import { type CertificateAuthority, createCA } from './pki.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

export interface EtcdPeer {
  /** http://127.0.0.1:<port> (https:// with TLS) */
  clientURL: string;
  /** 127.0.0.1:<port>, the form the etcd3 client takes. */
  endpoint: string;
  dataDir: string;
  process: ManagedProcess;
  /** With `tls`: the CA that signed the server cert, and a client cert it accepts. */
  tls?: EtcdTls;
  stop(): Promise<void>;
}

export interface EtcdTls {
  ca: CertificateAuthority;
  client: { certFile: string; keyFile: string; cert: string; key: string };
}

export interface StartEtcdOptions {
  name?: string;
  /** Serve clients over TLS with a fresh CA, and require client certificates. */
  tls?: boolean;
  /** Extra etcd flags, e.g. `--experimental-watch-progress-notify-interval=1s`. */
  extraArgs?: string[];
}

const ETCD_ENV = { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch };

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdPeer> {
  const name = opts.name ?? 'etcd';
  const scratch = scratchDir(name);
  const clientPort = await freePort();
  const peerPort = await freePort();
  const scheme = opts.tls ? 'https' : 'http';
  const clientURL = `${scheme}://127.0.0.1:${clientPort}`;
  let tls: EtcdTls | undefined;
  const tlsArgs: string[] = [];
  if (opts.tls) {
    const ca = createCA(scratch.dir, `${name}-ca`);
    const server = ca.issue({
      name: `${name}-server`,
      commonName: name,
      usage: 'server',
      subjectAltNames: ['IP:127.0.0.1', 'DNS:localhost'],
    });
    const client = ca.issue({ name: `${name}-client`, commonName: 'metalbox', usage: 'client' });
    tls = { ca, client };
    tlsArgs.push(
      `--cert-file=${server.certFile}`,
      `--key-file=${server.keyFile}`,
      `--trusted-ca-file=${ca.certFile}`,
      '--client-cert-auth',
    );
  }
  const proc = startProcess({
    name,
    command: peerBinary('etcd'),
    args: [
      `--name=${name}`,
      `--data-dir=${scratch.dir}/data`,
      `--listen-client-urls=${clientURL}`,
      `--advertise-client-urls=${clientURL}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=${name}=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
      ...tlsArgs,
      ...(opts.extraArgs ?? []),
    ],
    logDir: scratch.dir,
    // Debian's etcd 3.4 refuses to start on some architectures without this; harmless on amd64.
    env: ETCD_ENV,
  });
  const stop = async () => {
    await proc.stop();
    scratch.remove();
  };
  try {
    if (opts.tls) {
      // /health over TLS needs the client cert; the gRPC port answering is enough here.
      await waitForTcp(clientPort, proc);
    } else {
      await waitForHealth(clientURL, proc);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    clientURL,
    endpoint: `127.0.0.1:${clientPort}`,
    dataDir: `${scratch.dir}/data`,
    process: proc,
    ...(tls ? { tls } : {}),
    stop,
  };
}

export interface EtcdMember {
  name: string;
  /** 127.0.0.1:<port> */
  endpoint: string;
  clientURL: string;
  /** The current process (replaced by restart()). */
  process: ManagedProcess;
  isRunning(): boolean;
  /** SIGKILL, as a crashed machine. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a hung member that keeps its sockets open. */
  freeze(): void;
  thaw(): void;
  /** Starts the member again on its data dir and ports (after kill or stop). */
  restart(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client endpoint, for the etcd3 client's `hosts`. */
  endpoints: string[];
  /** Waits until the running members answer /health (true only with a leader). */
  waitHealthy(member?: EtcdMember): Promise<void>;
  stop(): Promise<void>;
}

/** `size` members on loopback forming one cluster (default election timing: 100 ms / 1 s). */
export async function startEtcdCluster(
  size = 3,
  opts: { name?: string; extraArgs?: string[] } = {},
): Promise<EtcdCluster> {
  const base = opts.name ?? 'etcd-cluster';
  const scratch = scratchDir(base);
  const specs = [];
  for (let i = 0; i < size; i++) {
    specs.push({ name: `${base}-${i}`, clientPort: await freePort(), peerPort: await freePort() });
  }
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
  const members: EtcdMember[] = specs.map((spec) => {
    const clientURL = `http://127.0.0.1:${spec.clientPort}`;
    const dataDir = join(scratch.dir, spec.name);
    const launch = () =>
      startProcess({
        name: spec.name,
        command: peerBinary('etcd'),
        args: [
          `--name=${spec.name}`,
          `--data-dir=${dataDir}`,
          `--listen-client-urls=${clientURL}`,
          `--advertise-client-urls=${clientURL}`,
          `--listen-peer-urls=http://127.0.0.1:${spec.peerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${spec.peerPort}`,
          `--initial-cluster=${initialCluster}`,
          `--initial-cluster-token=${base}`,
          '--initial-cluster-state=new',
          '--unsafe-no-fsync',
          '--log-level=warn',
          ...(opts.extraArgs ?? []),
        ],
        logDir: scratch.dir,
        env: ETCD_ENV,
      });
    const member: EtcdMember = {
      name: spec.name,
      endpoint: `127.0.0.1:${spec.clientPort}`,
      clientURL,
      process: launch(),
      isRunning: () => member.process.isRunning(),
      kill: () => member.process.kill(),
      freeze: () => process.kill(member.process.pid, 'SIGSTOP'),
      thaw: () => process.kill(member.process.pid, 'SIGCONT'),
      async restart() {
        if (member.process.isRunning()) return;
        member.process = launch();
        await waitForTcp(spec.clientPort, member.process);
      },
    };
    return member;
  });
  const stop = async () => {
    for (const m of members) {
      try {
        m.thaw();
      } catch {
        // not running
      }
    }
    await Promise.all(members.map((m) => m.process.stop()));
    scratch.remove();
  };
  const waitHealthy = async (only?: EtcdMember) => {
    for (const m of only ? [only] : members.filter((x) => x.isRunning())) {
      await waitForHealth(m.clientURL, m.process);
    }
  };
  try {
    await waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return { members, endpoints: members.map((m) => m.endpoint), waitHealthy, stop };
}

async function waitForHealth(clientURL: string, proc: ManagedProcess): Promise<void> {
  await waitFor(
    async () => {
      const res = await fetch(`${clientURL}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    },
    {
      what: `etcd ${proc.name} /health`,
      timeoutMs: 30_000,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : `${proc.name} exited`),
    },
  );
}

async function waitForTcp(port: number, proc: ManagedProcess): Promise<void> {
  const { connect } = await import('node:net');
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    {
      what: `etcd ${proc.name} client port`,
      timeoutMs: 30_000,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : `${proc.name} exited`),
    },
  );
}
