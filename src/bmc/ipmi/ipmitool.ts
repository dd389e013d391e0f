// Runs Debian's ipmitool for one command. The password goes through the child's environment (-E reads
// IPMI_PASSWORD), never the command line, which every local user can read in /proc/<pid>/cmdline. Each
// run has a deadline after which the child is SIGKILLed, and the promise settles only once the child has
// exited, so no ipmitool process outlives its call.
import { spawn } from 'node:child_process';

export interface IpmitoolTarget {
  host: string;
  port: number;
  username: string;
  password: string;
  cipherSuite: number;
}

export interface IpmitoolOptions {
  /** Path of the ipmitool binary (default: `ipmitool` on PATH). */
  binary?: string;
  /** Kill the child after this long (default 20 s). */
  timeoutMs: number;
  /** ipmitool's own per-packet timeout in seconds (-N) and retries (-R). */
  retransmitSeconds?: number;
  retransmits?: number;
}

export interface IpmitoolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the binary could not be started at all (e.g. ENOENT). */
  spawnError?: NodeJS.ErrnoException;
}

const MAX_OUTPUT = 1024 * 1024;

/** The argv ipmitool gets: connection flags, then the command. Contains no secret. */
export function ipmitoolArgs(target: IpmitoolTarget, options: IpmitoolOptions, command: string[]): string[] {
  return [
    '-I',
    'lanplus',
    '-H',
    target.host,
    '-p',
    String(target.port),
    '-U',
    target.username,
    '-E',
    '-C',
    String(target.cipherSuite),
    '-N',
    String(options.retransmitSeconds ?? 2),
    '-R',
    String(options.retransmits ?? 3),
    // -v adds the reason a session failed ("RAKP 2 HMAC is invalid") to stderr; stdout is unchanged.
    '-v',
    ...command,
  ];
}

export function runIpmitool(
  target: IpmitoolTarget,
  options: IpmitoolOptions,
  command: string[],
): Promise<IpmitoolResult> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      // Fixed locale: the parsers read English output.
      LANG: 'C',
      LC_ALL: 'C',
      IPMI_PASSWORD: target.password,
    };
    const child = spawn(options.binary ?? 'ipmitool', ipmitoolArgs(target, options, command), {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < MAX_OUTPUT) stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error: NodeJS.ErrnoException) => {
      spawnError = error;
    });
    // 'close' comes after exit and after the pipes drained (or after a spawn error): the child is gone.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ...(spawnError ? { spawnError } : {}) });
    });
  });
}
