// A throw-away etcd (Debian etcd-server) on free loopback ports with a temp data dir.

import { peerBinary, scratchDir } from './peers.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

export interface EtcdPeer {
  /** http://127.0.0.1:<port> */
  clientURL: string;
  /** 127.0.0.1:<port>, the form the etcd3 client takes. */
  endpoint: string;
  dataDir: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startEtcd(opts: { name?: string } = {}): Promise<EtcdPeer> {
  const name = opts.name ?? 'etcd';
  const scratch = scratchDir(name);
  const clientPort = await freePort();
  const peerPort = await freePort();
  const clientURL = `http://127.0.0.1:${clientPort}`;
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
    ],
    logDir: scratch.dir,
    // Debian's etcd 3.4 refuses to start on some architectures without this; harmless on amd64.
    env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch },
  });
  const stop = async () => {
    await proc.stop();
    scratch.remove();
  };
  try {
    await waitFor(
      async () => {
        const res = await fetch(`${clientURL}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      {
        what: 'etcd /health',
        timeoutMs: 30_000,
        context: () => proc.tail(),
        abortIf: () => (proc.isRunning() ? undefined : 'etcd exited'),
      },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    clientURL,
    endpoint: `127.0.0.1:${clientPort}`,
    dataDir: `${scratch.dir}/data`,
    process: proc,
    stop,
  };
}
