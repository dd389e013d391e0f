// SIMULATION: a stand-in for a Talos machine on the provisioning network, for tests and the demo.
// It fetches its config with the one-time URL from its kernel args and publishes the event
// sequence real Talos publishes (talos.md §5: the PXE run's initialize → install → kexec, then the
// disk boot's boot sequence and machine status) over real gRPC (h2c) to the event sink, from a
// chosen source address so several simulated machines on one computer look like different hosts.
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect, constants as h2 } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { PUBLISH_PATH } from '../talos/eventsink.ts';
import { encodeEventRequest, RESTART_KEXEC } from '../talos/install-events.ts';
import type { EventType } from '../talos/proto/load.ts';
import type { InstallReporter } from './reporter.ts';

export interface SimEvent {
  type: EventType;
  body: Record<string, unknown>;
}

const seq = (
  sequence: string,
  action: 'START' | 'STOP' | 'NOOP',
  error?: { code: string; message: string },
): SimEvent => ({
  type: 'SequenceEvent',
  body: { sequence, action, ...(error ? { error } : {}) },
});
const phase = (name: string, action: 'START' | 'STOP'): SimEvent => ({
  type: 'PhaseEvent',
  body: { phase: name, action },
});
const task = (name: string, action: 'START' | 'STOP'): SimEvent => ({
  type: 'TaskEvent',
  body: { task: name, action },
});
const stage = (s: string, ready = false, unmet: { name: string; reason: string }[] = []): SimEvent => ({
  type: 'MachineStatusEvent',
  body: { stage: s, status: { ready, unmet_conditions: unmet } },
});
const phases = (...names: string[]) => names.flatMap((n) => [phase(n, 'START'), phase(n, 'STOP')]);

/** The PXE run after the config was fetched: the rest of initialize, then the install sequence ending in kexec. */
export function installRunEvents(hostname: string, address: string): SimEvent[] {
  return [...installStartEvents(hostname, address), ...installFinishEvents()];
}

/** From the loaded config to the install phase running. */
export function installStartEvents(hostname: string, address: string): SimEvent[] {
  return [
    seq('initialize', 'START'),
    stage('BOOTING'),
    ...phases('logger', 'systemRequirements', 'integrity', 'etc', 'earlyServices', 'machined', 'config'),
    { type: 'AddressEvent', body: { hostname, addresses: [address] } },
    seq('initialize', 'STOP'),
    seq('install', 'START'),
    ...phases('env'),
    phase('install', 'START'),
    stage('INSTALLING'),
    task('install', 'START'),
  ];
}

/** From the installer's end to the kexec into the installed system. */
export function installFinishEvents(): SimEvent[] {
  return [
    task('install', 'STOP'),
    phase('install', 'STOP'),
    ...phases('meta', 'saveMeta', 'volumeFinalize', 'stopEverything'),
    phase('kexec', 'START'),
    stage('REBOOTING'),
    task('kexecPrepare', 'START'),
    task('kexecPrepare', 'STOP'),
    phase('kexec', 'STOP'),
    phase('reboot', 'START'),
    task('reboot', 'START'),
    { type: 'RestartEvent', body: { cmd: RESTART_KEXEC } },
    seq('install', 'NOOP', {
      code: 'FATAL',
      message: `sequence failed: unix.Reboot(${RESTART_KEXEC.toString(16)})`,
    }),
    seq('install', 'STOP'),
  ];
}

/** The first boot from disk: boot sequence, running but not ready, then ready. */
export function diskBootEvents(): SimEvent[] {
  return [
    seq('boot', 'START'),
    stage('BOOTING'),
    ...phases('saveStateEncryptionConfig', 'mountState', 'startEverything'),
    seq('boot', 'STOP'),
    stage('RUNNING', false, [{ name: 'nodeReady', reason: 'node not ready' }]),
    stage('RUNNING', true),
  ];
}

/** The served config was rejected: Talos reports it and stays in the initialize sequence. */
export function configRejectedEvents(message: string): SimEvent[] {
  return [
    seq('initialize', 'START'),
    stage('BOOTING'),
    phase('config', 'START'),
    { type: 'ConfigValidationErrorEvent', body: { error: message } },
    seq('initialize', 'NOOP', { code: 'FATAL', message: `sequence failed: ${message}` }),
  ];
}

/** An xid-like event id (Talos uses github.com/rs/xid). */
export const eventId = (): string => randomBytes(10).toString('hex');

export interface SimulatedMachineOptions {
  /** `host:port` from talos.events.sink. */
  sink: string;
  /** Source address of every connection (e.g. 127.0.0.12), so the servers see this machine's IP. */
  localAddress?: string;
}

/** SIMULATION: one Talos machine's event stream (one HTTP/2 connection, unary Publish calls, in order). */
export class SimulatedTalosMachine {
  #options: SimulatedMachineOptions;
  #session: ReturnType<typeof connect> | undefined;
  readonly published: string[] = [];

  constructor(options: SimulatedMachineOptions) {
    this.#options = options;
  }

  #connect() {
    if (this.#session && !this.#session.closed && !this.#session.destroyed) return this.#session;
    const colon = this.#options.sink.lastIndexOf(':');
    const host = this.#options.sink.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(this.#options.sink.slice(colon + 1));
    this.#session = connect(`http://${this.#options.sink}`, {
      createConnection: () =>
        netConnect({
          host,
          port,
          ...(this.#options.localAddress ? { localAddress: this.#options.localAddress } : {}),
        }),
    });
    this.#session.on('error', () => {});
    // An idle simulated machine must not keep the process alive.
    this.#session.unref();
    return this.#session;
  }

  /** Publishes one event (with `id`, default a fresh one); resolves with the gRPC status code. */
  publish(event: SimEvent, id: string = eventId()): Promise<number> {
    const message = Buffer.from(encodeEventRequest(id, event.type, event.body));
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    return new Promise((resolve, reject) => {
      const stream = this.#connect().request({
        [h2.HTTP2_HEADER_METHOD]: 'POST',
        [h2.HTTP2_HEADER_PATH]: PUBLISH_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let code: number | undefined;
      const take = (headers: Record<string, unknown>) => {
        const s = headers['grpc-status'];
        if (s !== undefined) code = Number(s);
      };
      stream.on('response', take);
      stream.on('trailers', take);
      stream.on('data', () => {});
      stream.on('error', reject);
      stream.on('close', () => {
        if (code === undefined) reject(new Error('gRPC call ended without a status'));
        else {
          if (code === 0) this.published.push(id);
          resolve(code);
        }
      });
      stream.end(frame);
    });
  }

  /** Publishes events in order; a non-OK status is resent (Talos resumes after the last acknowledged event). */
  async publishAll(events: readonly SimEvent[], options: { retries?: number } = {}): Promise<void> {
    for (const event of events) {
      const id = eventId();
      for (let attempt = 0; ; attempt++) {
        const code = await this.publish(event, id);
        if (code === 0) break;
        if (attempt >= (options.retries ?? 3)) throw new Error(`event sink answered gRPC status ${code}`);
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }

  close(): void {
    this.#session?.close();
  }
}

/** SIMULATION: the config download Talos does for `talos.config=<url>`, from `localAddress`. */
export function fetchConfig(
  url: string,
  options: { localAddress?: string; ca?: string | Buffer } = {},
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: 'GET',
        agent: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(options.ca ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The kernel args the simulated machine reads its URLs from. */
export function talosArgs(args: readonly string[]): { configURL?: string; eventSink?: string } {
  const get = (key: string) => args.find((a) => a.startsWith(`${key}=`))?.slice(key.length + 1);
  return { configURL: get('talos.config'), eventSink: get('talos.events.sink') };
}

export interface SimulatedInstallOptions {
  args: readonly string[];
  localAddress?: string;
  hostname?: string;
  /** success: fetch, install, kexec, disk boot, ready. config-rejected: fetch, then a validation error. */
  outcome?: 'success' | 'config-rejected';
  /** Stop after the install run (the disk boot is published by a second call to diskBoot()). */
  stopAfterInstall?: boolean;
  ca?: string | Buffer;
}

/** SIMULATION: what a PXE-booted Talos machine does with its kernel args. Returns the fetched config. */
export async function simulateTalosInstall(options: SimulatedInstallOptions): Promise<string> {
  const { configURL, eventSink } = talosArgs(options.args);
  if (!configURL || !eventSink) throw new Error('the kernel args carry no talos.config or talos.events.sink');
  const fetched = await fetchConfig(configURL, {
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(options.ca ? { ca: options.ca } : {}),
  });
  if (fetched.status !== 200) throw new Error(`config fetch answered ${fetched.status}`);
  const machine = new SimulatedTalosMachine({
    sink: eventSink,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  try {
    if (options.outcome === 'config-rejected') {
      await machine.publishAll(
        configRejectedEvents('1 error occurred:\n\t* install disk or diskSelector should be defined'),
      );
      return fetched.body;
    }
    await machine.publishAll(
      installRunEvents(options.hostname ?? 'talos', options.localAddress ?? '127.0.0.1'),
    );
    if (!options.stopAfterInstall) await machine.publishAll(diskBootEvents());
  } finally {
    machine.close();
  }
  return fetched.body;
}

/**
 * SIMULATION: an InstallReporter for src/sim/machine.ts that reports the way Talos does, by
 * publishing the real event sequence to the event sink: config fetched → the install run up to the
 * installer, installed → the rest of it through the kexec, booted → the disk boot. `localAddress`
 * must be the address the machine fetched its config from (the sink matches events by it).
 */
export function talosEventReporter(
  options: SimulatedMachineOptions & { hostname?: string },
): InstallReporter {
  const machine = new SimulatedTalosMachine(options);
  const address = options.localAddress ?? '127.0.0.1';
  return {
    async report(milestone) {
      if (milestone === 'config-fetched')
        await machine.publishAll(installStartEvents(options.hostname ?? 'talos', address));
      else if (milestone === 'installed') await machine.publishAll(installFinishEvents());
      else await machine.publishAll(diskBootEvents());
    },
  };
}
