// Reads what Matchbox's HTTP boot API answers a machine (GET /ipxe?mac=…, /boot.ipxe) and checks
// it against the boot config a profile declares: the evidence for the BootAnswerVerified condition.
import type { NetBoot } from './objects.ts';

export const DEFAULT_HTTP_TIMEOUT_MS = 5_000;

/** The iPXE script Matchbox renders for `boot` (its ipxeTemplate, byte for byte). */
export function renderIpxe(boot: NetBoot): string {
  const kernel = ['kernel', boot.kernel, ...boot.args].join(' ');
  return ['#!ipxe', kernel, ...boot.initrd.map((i) => `initrd ${i}`), 'boot', ''].join('\n');
}

/** An iPXE script that is not the kernel/initrd/boot shape Matchbox renders. */
export class IpxeParseError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(`iPXE script line ${line}: ${message}`);
    this.name = 'IpxeParseError';
    this.line = line;
  }
}

/**
 * Parses the script /ipxe returns into the boot config it runs. Matchbox writes args and initrd
 * entries unquoted, separated by single spaces; an initrd line keeps its options
 * (`initrd --name main /assets/initramfs.img`) as one entry, as the profile declared it.
 */
export function parseIpxe(script: string): NetBoot {
  const lines = script.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines[0]?.trim() !== '#!ipxe') throw new IpxeParseError(1, 'does not start with #!ipxe');
  let boot: NetBoot | undefined;
  const initrd: string[] = [];
  let booted = false;
  for (const [i, raw] of lines.entries()) {
    if (i === 0) continue;
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const [command = '', ...rest] = line.trim().split(/ +/);
    if (booted) throw new IpxeParseError(i + 1, `"${command}" after boot`);
    if (command === 'kernel') {
      if (boot) throw new IpxeParseError(i + 1, 'a second kernel line');
      const [kernel, ...args] = rest;
      if (!kernel) throw new IpxeParseError(i + 1, 'kernel line names no kernel');
      boot = { kernel, initrd, args };
    } else if (command === 'initrd') {
      if (rest.length === 0) throw new IpxeParseError(i + 1, 'initrd line names no initrd');
      initrd.push(rest.join(' '));
    } else if (command === 'boot') {
      booted = true;
    } else {
      throw new IpxeParseError(i + 1, `unexpected command "${command}"`);
    }
  }
  if (!boot) throw new IpxeParseError(lines.length, 'no kernel line');
  if (!booted) throw new IpxeParseError(lines.length, 'no boot line');
  return boot;
}

/**
 * The differences between what a machine would boot and what was expected, one readable line
 * each; empty when they agree. Args are compared as the kernel sees them (split on spaces).
 */
export function diffBoot(actual: NetBoot, expected: NetBoot): string[] {
  const diff: string[] = [];
  if (actual.kernel !== expected.kernel)
    diff.push(`kernel: expected ${expected.kernel}, got ${actual.kernel}`);
  const want = expected.args.join(' ').split(' ').filter(Boolean);
  const got = actual.args.join(' ').split(' ').filter(Boolean);
  if (want.join(' ') !== got.join(' ')) {
    const missing = want.filter((a) => !got.includes(a));
    const extra = got.filter((a) => !want.includes(a));
    if (missing.length) diff.push(`args missing: ${missing.join(' ')}`);
    if (extra.length) diff.push(`args unexpected: ${extra.join(' ')}`);
    if (!missing.length && !extra.length) {
      diff.push(`args order: expected "${want.join(' ')}", got "${got.join(' ')}"`);
    }
  }
  if (actual.initrd.join('\n') !== expected.initrd.join('\n')) {
    diff.push(`initrd: expected [${expected.initrd.join(', ')}], got [${actual.initrd.join(', ')}]`);
  }
  return diff;
}

/** The answer of one Matchbox HTTP endpoint to one machine. */
export interface BootAnswer {
  url: string;
  status: number;
  body: string;
  /** The parsed script when status is 200 and the body parses. */
  boot?: NetBoot;
  /** Why `boot` is absent. */
  problem?: string;
}

/** A Matchbox HTTP endpoint that could not be asked at all (refused, timed out, bad URL). */
export class MatchboxHttpError extends Error {
  readonly url: string;
  constructor(url: string, cause: unknown) {
    const why = describeFetchError(cause);
    super(`Matchbox HTTP API at ${url} did not answer: ${why}`);
    this.name = 'MatchboxHttpError';
    this.url = url;
  }
}

function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  const cause =
    error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code === 'ECONNREFUSED')
    return 'connection refused (is matchbox running and listening on -address?)';
  if (cause?.message) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

async function get(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    return { status: res.status, body: await res.text() };
  } catch (error) {
    throw new MatchboxHttpError(url, error);
  }
}

function baseUrl(httpURL: string): string {
  return httpURL.replace(/\/+$/, '');
}

/** GET <httpURL>/ipxe?mac=<mac>: the script Matchbox serves the machine with that MAC. */
export async function fetchIpxe(
  httpURL: string,
  mac: string,
  opts: { timeoutMs?: number } = {},
): Promise<BootAnswer> {
  const url = `${baseUrl(httpURL)}/ipxe?mac=${encodeURIComponent(mac)}`;
  const { status, body } = await get(url, opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS);
  if (status === 404) return { url, status, body, problem: `no group matches mac=${mac} (404)` };
  if (status !== 200) return { url, status, body, problem: `HTTP ${status}` };
  try {
    return { url, status, body, boot: parseIpxe(body) };
  } catch (error) {
    return { url, status, body, problem: (error as Error).message };
  }
}

/** GET <httpURL>/boot.ipxe: the static chain script (no matching involved). */
export async function fetchBootIpxe(httpURL: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  const url = `${baseUrl(httpURL)}/boot.ipxe`;
  const { status, body } = await get(url, opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS);
  if (status !== 200) throw new MatchboxHttpError(url, new Error(`HTTP ${status}`));
  return body;
}

/** Verdict for BootAnswerVerified: ok, or the reasons it is not, one line each. */
export interface BootVerification {
  ok: boolean;
  diff: string[];
  answer: BootAnswer;
}

/** Asks one endpoint what the machine with `mac` would boot and compares it with `expected`. */
export async function verifyBootAnswer(
  httpURL: string,
  mac: string,
  expected: NetBoot,
  opts: { timeoutMs?: number } = {},
): Promise<BootVerification> {
  const answer = await fetchIpxe(httpURL, mac, opts);
  if (!answer.boot) return { ok: false, diff: [answer.problem ?? `HTTP ${answer.status}`], answer };
  const diff = diffBoot(answer.boot, expected);
  return { ok: diff.length === 0, diff, answer };
}
