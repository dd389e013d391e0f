// sushy-tools' Redfish emulator, basic auth on, optionally HTTPS: its fake systems driver, or its
// libvirt driver for the boot lab's VMs. The fake driver applies power changes 1-11 s after the
// request (like real hardware), so tests poll PowerState rather than expecting an immediate change.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { peerBinary, scratchDir } from './peers.ts';
import { type CertificateAuthority, createCA } from './pki.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

export interface FakeSystem {
  name: string;
  uuid?: string;
  powerState?: 'On' | 'Off';
  macs: string[];
}

export interface SushyPeer {
  /** http(s)://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  tls: boolean;
  /** The CA that signed the emulator's cert (TLS variant only). */
  ca?: CertificateAuthority;
  systems: Required<FakeSystem>[];
  process(): ManagedProcess;
  /** Authenticated GET of a Redfish path, for tests reading back emulator state. */
  get(path: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startSushy(opts: {
  /** The fake driver's systems; ignored with `libvirt`. */
  systems: FakeSystem[];
  /** The libvirt driver instead: real VMs of that libvirtd, from a venv that sees libvirt's bindings. */
  libvirt?: {
    uri: string;
    emulator: string;
    /** The UEFI firmware the VMs use: sushy rewrites a domain's loader when asked for a boot mode it does not recognise. */
    uefi: { code: string; vars: string };
  };
  tls?: boolean;
  name?: string;
  /** Listen here instead of 127.0.0.1 (a test network's address, e.g. the cluster's host end). */
  host?: string;
}): Promise<SushyPeer> {
  const host = opts.host ?? '127.0.0.1';
  const name = opts.name ?? 'sushy';
  const scratch = scratchDir(name);
  const dir = scratch.dir;
  const port = await freePort();
  const username = 'admin';
  const password = randomBytes(9).toString('base64url');
  const emulator = opts.libvirt?.emulator ?? peerBinary('sushyEmulator');
  const python = join(dirname(emulator), 'python');

  // sushy-tools accepts only bcrypt entries in its htpasswd file.
  const hash = execFileSync(
    python,
    [
      '-c',
      'import bcrypt,sys;print(bcrypt.hashpw(sys.stdin.buffer.read(),bcrypt.gensalt(rounds=4)).decode())',
    ],
    {
      input: password,
    },
  )
    .toString()
    .trim();
  writeFileSync(join(dir, 'htpasswd'), `${username}:${hash}\n`);

  const systems = opts.systems.map((s) => ({
    name: s.name,
    uuid: s.uuid ?? randomUUID(),
    powerState: s.powerState ?? ('Off' as const),
    macs: s.macs,
  }));
  const pySystems = systems.map((s) => ({
    uuid: s.uuid,
    name: s.name,
    power_state: s.powerState,
    external_notifier: false,
    nics: s.macs.map((mac) => ({ mac })),
  }));
  const config = [
    ...(opts.libvirt
      ? [
          `SUSHY_EMULATOR_LIBVIRT_URI = ${JSON.stringify(opts.libvirt.uri)}`,
          `SUSHY_EMULATOR_BOOT_LOADER_MAP = {'UEFI': {'x86_64': ${JSON.stringify(opts.libvirt.uefi.code)}}, 'Legacy': {'x86_64': None}}`,
          `SUSHY_EMULATOR_SECURE_BOOT_DISABLED_NVRAM = ${JSON.stringify(opts.libvirt.uefi.vars)}`,
        ]
      : [
          'SUSHY_EMULATOR_FAKE_DRIVER = True',
          `SUSHY_EMULATOR_FAKE_SYSTEMS = ${JSON.stringify(pySystems).replaceAll('false', 'False').replaceAll('true', 'True')}`,
        ]),
    `SUSHY_EMULATOR_AUTH_FILE = ${JSON.stringify(join(dir, 'htpasswd'))}`,
    `SUSHY_EMULATOR_STATE_DIR = ${JSON.stringify(join(dir, 'state'))}`,
    `SUSHY_EMULATOR_LISTEN_IP = '${host}'`,
    `SUSHY_EMULATOR_LISTEN_PORT = ${port}`,
  ];
  let ca: CertificateAuthority | undefined;
  if (opts.tls) {
    ca = createCA(dir, 'sushy-ca');
    const cert = ca.issue({
      name: 'sushy',
      commonName: 'bmc',
      usage: 'server',
      subjectAltNames: ['IP:127.0.0.1'],
    });
    config.push(`SUSHY_EMULATOR_SSL_CERT = ${JSON.stringify(cert.certFile)}`);
    config.push(`SUSHY_EMULATOR_SSL_KEY = ${JSON.stringify(cert.keyFile)}`);
  }
  writeFileSync(join(dir, 'emulator.conf'), `${config.join('\n')}\n`);

  const url = `${opts.tls ? 'https' : 'http'}://${host}:${port}`;
  const agent = new Agent({ connect: ca ? { ca: ca.cert } : {} });
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const get = async (path: string) => {
    const res = await undiciFetch(`${url}${path}`, { dispatcher: agent, headers: { authorization: auth } });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };

  let proc: ManagedProcess | undefined;
  const start = async () => {
    const current = startProcess({
      name,
      command: emulator,
      args: ['--config', join(dir, 'emulator.conf')],
      logDir: dir,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    proc = current;
    await waitFor(async () => (await get('/redfish/v1/Systems')).Members !== undefined, {
      what: `${name} Redfish service`,
      timeoutMs: 30_000,
      intervalMs: 200,
      context: () => current.tail(),
      abortIf: () => (current.isRunning() ? undefined : `${name} exited`),
    });
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
    url,
    host,
    port,
    username,
    password,
    tls: opts.tls === true,
    ...(ca ? { ca } : {}),
    systems,
    process: () => {
      if (!proc) throw new Error(`${name} never started`);
      return proc;
    },
    get,
    stop,
    start,
    async destroy() {
      await stop();
      await agent.close();
      scratch.remove();
    },
  };
}
