// The seed's HA Matchbox pair on the lab segment: mgmt-01 and mgmt-02 each run Matchbox (HTTP boot
// API on every address, so also on the VIP; gRPC over mTLS on the node's own address) and
// keepalived, which holds the VIP on the node whose Matchbox answers (a track script probes it), so
// killing the VIP holder's Matchbox moves the VIP to the other node.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MatchboxPKI } from '../env/matchbox.ts';
import { createCA } from '../env/pki.ts';
import { type ManagedProcess, startProcess } from '../env/process.ts';
import { waitFor } from '../env/wait.ts';
import type { LabNetwork } from './network.ts';

export const MATCHBOX_HTTP_PORT = 8080;
export const MATCHBOX_RPC_PORT = 8081;

export interface LabMatchbox {
  name: 'mgmt-01' | 'mgmt-02';
  ns: string;
  address: string;
  rpcEndpoint: string;
  /** The node's own HTTP address (what metalbox verifies boot answers against). */
  httpURL: string;
  assetsPath: string;
  dataPath: string;
  logFile: string;
  process(): ManagedProcess;
  /** Kills Matchbox only (keepalived notices and gives up the VIP). */
  kill(): Promise<void>;
  start(): Promise<void>;
  holdsVip(): boolean;
}

export interface MatchboxHA {
  nodes: [LabMatchbox, LabMatchbox];
  pki: MatchboxPKI;
  vipURL: string;
  /** The node holding the VIP now, if any. */
  vipHolder(): LabMatchbox | undefined;
  stop(): Promise<void>;
}

export async function startMatchboxHA(opts: {
  net: LabNetwork;
  dir: string;
  matchbox: string;
  keepalived: string;
}): Promise<MatchboxHA> {
  const { net, dir } = opts;
  const ca = createCA(dir, 'lab-matchbox-ca');
  const pki: MatchboxPKI = {
    ca,
    server: ca.issue({
      name: 'lab-matchbox-server',
      commonName: 'matchbox',
      usage: 'server',
      subjectAltNames: [...net.mgmtAddresses, net.vip].map((a) => `IP:${a}`),
    }),
    client: ca.issue({ name: 'lab-matchbox-client', commonName: 'metalbox', usage: 'client' }),
  };
  const procs: ManagedProcess[] = [];
  const nodes = net.mgmtNs.map((ns, i) => {
    const name = i === 0 ? ('mgmt-01' as const) : ('mgmt-02' as const);
    const address = net.mgmtAddresses[i]!;
    const nodeDir = join(dir, name);
    const dataPath = join(nodeDir, 'data');
    const assetsPath = join(nodeDir, 'assets');
    for (const sub of ['groups', 'profiles', 'generic', 'ignition'])
      mkdirSync(join(dataPath, sub), { recursive: true });
    mkdirSync(assetsPath, { recursive: true });
    const httpURL = `http://${address}:${MATCHBOX_HTTP_PORT}`;
    let proc: ManagedProcess | undefined;
    const start = async () => {
      const c = net.inNs(ns, opts.matchbox, [
        `-address=0.0.0.0:${MATCHBOX_HTTP_PORT}`,
        `-rpc-address=${address}:${MATCHBOX_RPC_PORT}`,
        `-data-path=${dataPath}`,
        `-assets-path=${assetsPath}`,
        `-cert-file=${pki.server.certFile}`,
        `-key-file=${pki.server.keyFile}`,
        `-ca-file=${pki.ca.certFile}`,
        '-log-level=debug',
      ]);
      const current = startProcess({
        name: `matchbox-${name}`,
        command: c.command,
        args: c.args,
        logDir: nodeDir,
      });
      proc = current;
      procs.push(current);
      await waitFor(
        async () => {
          const res = await fetch(`${httpURL}/`, { signal: AbortSignal.timeout(2000) });
          return res.ok;
        },
        {
          what: `Matchbox on ${name}`,
          timeoutMs: 30_000,
          context: () => current.tail(),
          abortIf: () => (current.isRunning() ? undefined : `Matchbox on ${name} exited`),
        },
      );
    };
    const node: LabMatchbox = {
      name,
      ns,
      address,
      rpcEndpoint: `${address}:${MATCHBOX_RPC_PORT}`,
      httpURL,
      assetsPath,
      dataPath,
      logFile: join(nodeDir, `matchbox-${name}.log`),
      process: () => {
        if (!proc) throw new Error(`Matchbox on ${name} never started`);
        return proc;
      },
      kill: async () => {
        await proc?.kill();
      },
      start,
      holdsVip: () =>
        net.run(ns, 'ip', ['-4', '-o', 'addr', 'show', 'dev', net.mgmtInterface]).includes(` ${net.vip}/`),
    };
    return node;
  }) as [LabMatchbox, LabMatchbox];

  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
  };
  try {
    for (const node of nodes) await node.start();
    // keepalived: both BACKUP with nopreempt, mgmt-01 preferred; the VIP follows a Matchbox that answers.
    nodes.forEach((node, i) => {
      const kaDir = join(dir, `${node.name}-keepalived`);
      mkdirSync(kaDir, { recursive: true });
      writeFileSync(
        join(kaDir, 'keepalived.conf'),
        `global_defs {
  script_user root
  enable_script_security
}
vrrp_script matchbox_http {
  script "/usr/bin/curl -sf -m 1 -o /dev/null http://127.0.0.1:${MATCHBOX_HTTP_PORT}/"
  interval 1
  fall 1
  rise 2
}
vrrp_instance matchbox {
  state BACKUP
  interface ${net.mgmtInterface}
  virtual_router_id 77
  priority ${i === 0 ? 150 : 100}
  advert_int 1
  nopreempt
  unicast_src_ip ${node.address}
  unicast_peer {
    ${net.mgmtAddresses[1 - i]}
  }
  virtual_ipaddress {
    ${net.vip}/24
  }
  track_script {
    matchbox_http
  }
}
`,
      );
      const c = net.inNs(node.ns, opts.keepalived, [
        '--dont-fork',
        '--log-console',
        '--log-detail',
        '--no-syslog',
        '-f',
        join(kaDir, 'keepalived.conf'),
        '-p',
        join(kaDir, 'keepalived.pid'),
        '-r',
        join(kaDir, 'vrrp.pid'),
        '-c',
        join(kaDir, 'checkers.pid'),
      ]);
      procs.push(
        startProcess({ name: `keepalived-${node.name}`, command: c.command, args: c.args, logDir: kaDir }),
      );
    });
    await waitFor(async () => nodes.some((n) => n.holdsVip()), {
      what: 'keepalived to place the Matchbox VIP',
      timeoutMs: 30_000,
      context: () => procs.map((p) => `${p.name}:\n${p.tail(15)}`).join('\n'),
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes,
    pki,
    vipURL: `http://${net.vip}:${MATCHBOX_HTTP_PORT}`,
    vipHolder: () => nodes.find((n) => n.holdsVip()),
    stop,
  };
}

/** Matchbox's log lines since `offset` (for asserting what it served). */
export function matchboxLog(node: LabMatchbox): string {
  try {
    return readFileSync(node.logFile, 'utf8');
  } catch {
    return '';
  }
}
