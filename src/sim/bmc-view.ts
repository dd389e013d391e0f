// SIMULATION: what a simulated machine's "hardware" sees of its BMC: power and the one-time boot
// override, read the way firmware would act on them. The Redfish view reads a sushy-tools fake
// system with plain GETs; consuming the override is the firmware clearing it after one boot
// (sushy-tools keeps every override "Continuous", so the simulated firmware resets it to Hdd).
import { Agent, fetch as undiciFetch } from 'undici';

export interface BmcReading {
  power: 'on' | 'off';
  /** A one-time network boot is pending. */
  bootOncePxe: boolean;
}

export interface SimulatedBmcView {
  read(): Promise<BmcReading>;
  /** Firmware used the override for this boot: it is cleared. */
  consumeBootOnce(): Promise<void>;
  close(): Promise<void>;
}

export interface RedfishViewOptions {
  /** http(s)://host:port of the emulator. */
  baseUrl: string;
  /** e.g. /redfish/v1/Systems/<id> */
  systemPath: string;
  username: string;
  password: string;
  /** PEM CA for an HTTPS emulator. */
  ca?: string;
}

export function redfishSystemView(opts: RedfishViewOptions): SimulatedBmcView {
  const agent = new Agent({ connect: opts.ca ? { ca: opts.ca } : {}, connections: 2 });
  const url = `${opts.baseUrl}${opts.systemPath}`;
  const headers = {
    authorization: `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`,
    'content-type': 'application/json',
  };
  return {
    async read() {
      const res = await undiciFetch(url, { dispatcher: agent, headers, signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`SIMULATION: GET ${opts.systemPath}: HTTP ${res.status}`);
      const system = (await res.json()) as {
        PowerState?: string;
        Boot?: { BootSourceOverrideTarget?: string };
      };
      return {
        power: system.PowerState === 'On' ? 'on' : 'off',
        bootOncePxe: system.Boot?.BootSourceOverrideTarget === 'Pxe',
      };
    },
    async consumeBootOnce() {
      const res = await undiciFetch(url, {
        method: 'PATCH',
        dispatcher: agent,
        headers,
        body: JSON.stringify({ Boot: { BootSourceOverrideTarget: 'Hdd' } }),
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`SIMULATION: PATCH ${opts.systemPath}: HTTP ${res.status}`);
    },
    close: () => agent.close(),
  };
}
