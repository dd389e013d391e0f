// Real Matchbox servers (gRPC API over mandatory mTLS + HTTP boot API) on free loopback ports.
// One PKI per test run: a CA, a server cert naming 127.0.0.1, and a client cert; two instances
// sharing the PKI form the HA pair of the seed design.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { peerBinary, scratchDir } from './peers.ts';
import { type CertFiles, type CertificateAuthority, createCA } from './pki.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

export interface MatchboxPKI {
  ca: CertificateAuthority;
  server: CertFiles;
  client: CertFiles;
}

export interface MatchboxPeer {
  name: string;
  /** host:port of the gRPC API (the form Matchbox clients take: no scheme). */
  rpcEndpoint: string;
  /** http://127.0.0.1:<port> of the HTTP boot API. */
  httpURL: string;
  dataPath: string;
  assetsPath: string;
  pki: MatchboxPKI;
  process(): ManagedProcess;
  /** Stops the server; `start()` brings it back on the same ports. */
  stop(): Promise<void>;
  /** Starts it again; `wipeData` replaces the data dir with an empty one (a rebuilt backup node). */
  start(opts?: { wipeData?: boolean }): Promise<void>;
  /** Stops it for good and removes its files. */
  destroy(): Promise<void>;
}

/** `host`: the address the server cert names besides 127.0.0.1 (a test network's, see startMatchbox). */
export function createMatchboxPKI(dir: string, host?: string): MatchboxPKI {
  const ca = createCA(dir, 'matchbox-ca');
  return {
    ca,
    server: ca.issue({
      name: 'matchbox-server',
      commonName: 'matchbox-server',
      usage: 'server',
      subjectAltNames: ['IP:127.0.0.1', 'DNS:localhost', ...(host ? [`IP:${host}`] : [])],
    }),
    client: ca.issue({ name: 'matchbox-client', commonName: 'metalbox', usage: 'client' }),
  };
}

export async function startMatchbox(
  opts: {
    name?: string;
    pki?: MatchboxPKI;
    /** A Matchbox data dir (profiles/, groups/, generic/) copied in before the first start. */
    seedDataFrom?: string;
    /** Listen here instead of 127.0.0.1 (a test network's address, e.g. the cluster's host end). */
    host?: string;
  } = {},
): Promise<MatchboxPeer> {
  const name = opts.name ?? 'matchbox';
  const scratch = scratchDir(name);
  const host = opts.host ?? '127.0.0.1';
  const pki = opts.pki ?? createMatchboxPKI(scratch.dir, opts.host);
  const httpPort = await freePort();
  const rpcPort = await freePort();
  const dataPath = join(scratch.dir, 'data');
  const assetsPath = join(scratch.dir, 'assets');
  const makeDirs = () => {
    for (const sub of ['', 'groups', 'profiles', 'generic', 'ignition'])
      mkdirSync(join(dataPath, sub), { recursive: true });
    mkdirSync(assetsPath, { recursive: true });
  };
  makeDirs();
  if (opts.seedDataFrom) cpSync(opts.seedDataFrom, dataPath, { recursive: true });
  const httpURL = `http://${host}:${httpPort}`;
  let proc: ManagedProcess | undefined;

  const start = async (startOpts: { wipeData?: boolean } = {}) => {
    if (startOpts.wipeData) {
      rmSync(dataPath, { recursive: true, force: true });
      makeDirs();
    }
    const current = startProcess({
      name,
      command: peerBinary('matchbox'),
      args: [
        `-address=${host}:${httpPort}`,
        `-rpc-address=${host}:${rpcPort}`,
        `-data-path=${dataPath}`,
        `-assets-path=${assetsPath}`,
        `-cert-file=${pki.server.certFile}`,
        `-key-file=${pki.server.keyFile}`,
        `-ca-file=${pki.ca.certFile}`,
        '-log-level=debug',
      ],
      logDir: scratch.dir,
    });
    proc = current;
    await waitFor(
      async () => {
        const res = await fetch(`${httpURL}/`);
        return res.ok && (await res.text()) === 'matchbox\n';
      },
      {
        what: `${name} HTTP API`,
        timeoutMs: 30_000,
        context: () => current.tail(),
        abortIf: () => (current.isRunning() ? undefined : `${name} exited`),
      },
    );
    // gRPC listens before HTTP starts serving (main.go), so HTTP answering means both are up.
  };
  const stop = async () => {
    await proc?.stop();
  };
  try {
    await start();
  } catch (error) {
    await stop();
    scratch.remove();
    throw error;
  }
  return {
    name,
    rpcEndpoint: `${host}:${rpcPort}`,
    httpURL,
    dataPath,
    assetsPath,
    pki,
    process: () => {
      if (!proc) throw new Error(`${name} never started`);
      return proc;
    },
    stop,
    start,
    async destroy() {
      await stop();
      scratch.remove();
    },
  };
}

/** Two Matchbox servers sharing one PKI, like mgmt-01/mgmt-02 behind the VIP. */
export async function startMatchboxPair(): Promise<{
  a: MatchboxPeer;
  b: MatchboxPeer;
  pki: MatchboxPKI;
  destroy(): Promise<void>;
}> {
  const pkiDir = scratchDir('matchbox-pki');
  const pki = createMatchboxPKI(pkiDir.dir);
  const a = await startMatchbox({ name: 'matchbox-a', pki });
  let b: MatchboxPeer;
  try {
    b = await startMatchbox({ name: 'matchbox-b', pki });
  } catch (error) {
    await a.destroy();
    throw error;
  }
  return {
    a,
    b,
    pki,
    async destroy() {
      await Promise.all([a.destroy(), b.destroy()]);
      pkiDir.remove();
    },
  };
}
