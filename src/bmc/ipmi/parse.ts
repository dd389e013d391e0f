// Parsers for Debian ipmitool's text output and errors. Vendors and ipmitool versions vary the wording
// ("Chassis Power is on", "Chassis power is: ON", "System Power : on"), so matching is loose on case and
// punctuation, and strict on meaning: anything unrecognised is an error, never a guess.
import type { PowerState } from '../driver.ts';

/** `chassis power status` or `chassis status` output → power state, or undefined if unrecognised. */
export function parsePowerStatus(stdout: string): PowerState | undefined {
  const match = /(?:chassis\s+)?(?:system\s+)?power(?:\s+status)?\s*(?:is|:)\s*:?\s*(on|off)\b/i.exec(stdout);
  if (!match) return undefined;
  return match[1]!.toLowerCase() === 'on' ? 'on' : 'off';
}

/** `key : value` lines (mc info, fru print, mc guid) → map; continuation lines are ignored. */
export function parseFields(stdout: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^\s*([^:]+?)\s*:\s*(.*?)\s*$/.exec(line);
    if (!match || match[1]!.trim() === '') continue;
    const key = match[1]!.trim().toLowerCase();
    if (!fields.has(key)) fields.set(key, match[2]!);
  }
  return fields;
}

/** `mc guid` → the system GUID, lower-case and dashed, if it looks like one. */
export function parseGuid(stdout: string): string | undefined {
  const value = parseFields(stdout).get('system guid');
  if (!value) return undefined;
  const guid = value.trim().toLowerCase();
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(guid)) return guid;
  // ipmitool prints the raw 16 bytes when it cannot tell the encoding.
  if (/^[0-9a-f]{32}$/.test(guid)) {
    return `${guid.slice(0, 8)}-${guid.slice(8, 12)}-${guid.slice(12, 16)}-${guid.slice(16, 20)}-${guid.slice(20)}`;
  }
  return undefined;
}

export type IpmitoolFailure =
  | 'auth' // credentials rejected
  | 'privilege' // logged in, but the account may not do this
  | 'cipher' // cipher suite not offered by the BMC: try the next one
  | 'unreachable' // nothing answered
  | 'session' // session could not be set up for another reason
  | 'command'; // the BMC answered and refused or failed the command

/** Classifies a failed ipmitool run from its stderr (and stdout, where some errors go). */
export function classifyFailure(output: string): IpmitoolFailure {
  const text = output.toLowerCase();
  if (
    /rakp 2 hmac is invalid|unauthorized name|invalid (user ?name|password)|password (invalid|incorrect)|authentication (failed|error)|invalid session|activate session error/.test(
      text,
    )
  ) {
    return 'auth';
  }
  if (/insufficient privilege|privilege level|requested privilege/.test(text)) return 'privilege';
  if (
    /invalid (authentication|integrity|confidentiality) algorithm|(authentication|integrity|confidentiality) algorithm 0x[0-9a-f]+ is not what we requested|no matching cipher suite|cipher suite[^\n]*(not supported|unavailable|invalid)|unsupported cipher|invalid cipher/.test(
      text,
    )
  ) {
    return 'cipher';
  }
  if (
    /get auth capabilities error|get channel authentication capabilities|no response from remote controller|unable to (send|receive)|address lookup|name or service not known|connection refused|network is unreachable|no route to host/.test(
      text,
    )
  ) {
    return 'unreachable';
  }
  if (/unable to establish (ipmi v2 \/ rmcp\+|lan) session|error: unable to establish/.test(text))
    return 'session';
  return 'command';
}

/** The lines worth showing a person: ipmitool's verbose chatter and blank lines dropped. */
export function meaningfulLines(output: string, max = 3): string {
  const noise =
    /^(loading iana pen registry|running get vso capabilities|invalid completion code received: invalid command|discovered ipmb address|>\s*$)/i;
  const lines = output
    .split('\n')
    .map((l) => l.replace(/^>\s*/, '').trim())
    .filter((l) => l !== '' && !noise.test(l));
  return lines.slice(-max).join('; ');
}
