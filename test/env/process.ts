// Child processes for real test peers: each runs in its own process group, logs to a file, and is
// killed on stop(), on test-process exit, and on Ctrl-C, so no peer outlives the test run.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  logDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or null when killed by a signal). */
  readonly exited: Promise<number | null>;
  isRunning(): boolean;
  /** Last lines of the log, for failure messages. */
  tail(lines?: number): string;
  /** SIGTERM the process group, SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL the process group immediately (crash simulation). */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const child of live) killGroup(child, 'SIGKILL');
      process.exit(130);
    });
  }
}

export function startProcess(opts: StartOptions): ManagedProcess {
  installExitHooks();
  const logFile = join(opts.logDir, `${opts.name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (child.pid === undefined) {
    throw new Error(`${opts.name}: could not spawn ${opts.command}`);
  }
  live.add(child);
  let running = true;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running = false;
      live.delete(child);
      resolve(code);
    });
    child.once('error', () => {
      running = false;
      live.delete(child);
      resolve(null);
    });
  });
  // Unref so a forgotten peer never keeps the test process alive; the exit hook still kills it.
  child.unref();

  const tail = (lines = 40): string => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };
  const waitExit = async (ms: number): Promise<boolean> => {
    if (!running) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const done = await Promise.race([exited.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return done;
  };
  return {
    name: opts.name,
    pid: child.pid,
    logFile,
    exited,
    isRunning: () => running,
    tail,
    async stop(graceMs = 5000) {
      if (!running) return;
      killGroup(child, 'SIGTERM');
      if (!(await waitExit(graceMs))) {
        killGroup(child, 'SIGKILL');
        await waitExit(5000);
      }
    },
    async kill() {
      if (!running) return;
      killGroup(child, 'SIGKILL');
      await waitExit(5000);
    },
  };
}
