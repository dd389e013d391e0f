// virtualbmc: a real IPMI 2.0 (lanplus) BMC per libvirt domain, on loopback UDP ports. vbmcd's
// config and state live in this run's scratch dir (HOME and VIRTUALBMC_CONFIG point there) and it
// talks to the lab's libvirtd over its unix socket.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, freeUdpPort } from '../env/ports.ts';
import { type ManagedProcess, startProcess } from '../env/process.ts';
import { waitFor } from '../env/wait.ts';

const run = promisify(execFile);

export interface VirtualBmc {
  process: ManagedProcess;
  username: string;
  password: string;
  /** Adds and starts a BMC for `domain`; returns its ipmi:// address. */
  add(domain: string): Promise<{ address: string; port: number }>;
  stop(): Promise<void>;
}

export async function startVirtualBmc(opts: {
  dir: string;
  venvBin: string;
  libvirtUri: string;
}): Promise<VirtualBmc> {
  const home = join(opts.dir, 'vbmc');
  mkdirSync(join(home, 'bmcs'), { recursive: true });
  const conf = join(home, 'virtualbmc.conf');
  const serverPort = await freePort();
  writeFileSync(
    conf,
    `[default]\nconfig_dir = ${join(home, 'bmcs')}\npid_file = ${join(home, 'vbmcd.pid')}\nserver_port = ${serverPort}\n`,
  );
  const env = { ...process.env, HOME: home, VIRTUALBMC_CONFIG: conf, PYTHONUNBUFFERED: '1' };
  const proc = startProcess({
    name: 'vbmcd',
    command: join(opts.venvBin, 'vbmcd'),
    args: ['--foreground'],
    logDir: opts.dir,
    env,
  });
  const vbmc = (args: string[]) => run(join(opts.venvBin, 'vbmc'), args, { env, timeout: 60_000 });
  try {
    await waitFor(async () => (await vbmc(['list'])).stdout !== undefined, {
      what: 'vbmcd',
      timeoutMs: 30_000,
      intervalMs: 500,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : 'vbmcd exited'),
    });
  } catch (error) {
    await proc.stop();
    throw error;
  }
  const username = 'admin';
  const password = randomBytes(9).toString('base64url');
  return {
    process: proc,
    username,
    password,
    async add(domain) {
      const port = await freeUdpPort();
      await vbmc([
        'add',
        domain,
        '--address',
        '127.0.0.1',
        '--port',
        String(port),
        '--username',
        username,
        '--password',
        password,
        '--libvirt-uri',
        opts.libvirtUri,
      ]);
      await vbmc(['start', domain]);
      await waitFor(async () => (await vbmc(['show', domain])).stdout.match(/status\s*\|\s*running/), {
        what: `virtualbmc for ${domain}`,
        timeoutMs: 30_000,
        intervalMs: 500,
        context: () => proc.tail(),
      });
      return { address: `ipmi://127.0.0.1:${port}`, port };
    },
    stop: () => proc.stop(),
  };
}
