// OpenIPMI's ipmi_sim as a BMC answering real IPMI 2.0 lanplus. Its chassis_control hook is a small
// script that keeps power/boot state in files, so a test can read back what ipmitool did.
// Note: the simulator accepts cipher suite 3 only (17 is refused), and `power cycle` only powers off.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerBinary, scratchDir } from './peers.ts';
import { freeUdpPort } from './ports.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

export interface IpmiSimPeer {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Current simulated chassis state. */
  state(): { power: 'on' | 'off'; bootDevice: string };
  /** Every chassis_control call in order, e.g. ["set power 1", "get power"]. */
  calls(): string[];
  process(): ManagedProcess;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startIpmiSim(opts: { name?: string; poweredOn?: boolean } = {}): Promise<IpmiSimPeer> {
  const name = opts.name ?? 'ipmi-sim';
  const scratch = scratchDir(name);
  const dir = scratch.dir;
  const port = await freeUdpPort();
  const username = 'admin';
  const password = randomBytes(9).toString('base64url');

  writeFileSync(join(dir, 'power'), opts.poweredOn ? '1\n' : '0\n');
  writeFileSync(join(dir, 'boot'), 'default\n');
  writeFileSync(join(dir, 'calls.log'), '');
  const control = join(dir, 'chassis-control.sh');
  writeFileSync(
    control,
    [
      '#!/bin/sh',
      `state=${JSON.stringify(dir)}`,
      'echo "$*" >> "$state/calls.log"',
      'if [ "$1" = get ]; then',
      '  shift; for key in "$@"; do printf "%s:%s\\n" "$key" "$(cat "$state/$key" 2>/dev/null || echo 0)"; done',
      'elif [ "$1" = set ]; then',
      '  shift; while [ $# -ge 2 ]; do echo "$2" > "$state/$1"; shift 2; done',
      'fi',
      '',
    ].join('\n'),
  );
  chmodSync(control, 0o755);
  const auths = 'none md2 md5 straight';
  writeFileSync(
    join(dir, 'lan.conf'),
    [
      `name "${name}"`,
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr 127.0.0.1 ${port}`,
      '    priv_limit admin',
      ...['callback', 'user', 'operator', 'admin'].map((level) => `    allowed_auths_${level} ${auths}`),
      `    guid ${randomBytes(16).toString('hex')}`,
      '  endlan',
      `  chassis_control "${control}"`,
      `  user 2 true "${username}" "${password}" admin 10 ${auths}`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'sim.emu'),
    [
      'mc_setbmc 0x20',
      'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr',
      'mc_enable 0x20',
      '',
    ].join('\n'),
  );

  const ipmitool = (args: string[]) => runIpmitool({ host: '127.0.0.1', port, username, password }, args);
  const read = (file: string) => readFileSync(join(dir, file), 'utf8').trim();
  let proc: ManagedProcess | undefined;
  const start = async () => {
    const current = startProcess({
      name,
      command: peerBinary('ipmiSim'),
      args: [
        '-c',
        join(dir, 'lan.conf'),
        '-f',
        join(dir, 'sim.emu'),
        '-n',
        '-d',
        '-s',
        join(dir, 'sim-state'),
      ],
      logDir: dir,
    });
    proc = current;
    // The simulator logs nothing when ready, so ask it something over lanplus until it answers.
    await waitFor(async () => (await ipmitool(['mc', 'info'])).code === 0, {
      what: `${name} answering IPMI lanplus`,
      timeoutMs: 15_000,
      intervalMs: 200,
      context: () => current.tail(),
      abortIf: () => (current.isRunning() ? undefined : `${name} exited`),
    });
  };
  try {
    await start();
  } catch (error) {
    await proc?.stop();
    scratch.remove();
    throw error;
  }
  return {
    host: '127.0.0.1',
    port,
    username,
    password,
    state: () => ({ power: read('power') === '1' ? 'on' : 'off', bootDevice: read('boot') }),
    calls: () => read('calls.log').split('\n').filter(Boolean),
    process: () => {
      if (!proc) throw new Error(`${name} never started`);
      return proc;
    },
    stop: async () => {
      await proc?.stop();
    },
    start,
    async destroy() {
      await proc?.stop();
      scratch.remove();
    },
  };
}

/** Runs Debian's ipmitool against a simulator; the password goes through the environment (-E). */
export function runIpmitool(
  bmc: { host: string; port: number; username: string; password: string },
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      peerBinary('ipmitool'),
      [
        '-I',
        'lanplus',
        '-C',
        '3',
        '-H',
        bmc.host,
        '-p',
        String(bmc.port),
        '-U',
        bmc.username,
        '-E',
        '-N',
        '1',
        '-R',
        '1',
        ...args,
      ],
      { env: { ...process.env, IPMI_PASSWORD: bmc.password }, timeout: 10_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
