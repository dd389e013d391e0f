/**
 * One process per data directory: a LOCK file holding the owner's pid. A lock left by a process
 * that no longer exists (a crash) is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

export class DirLockedError extends Error {
  constructor(dir: string, pid: number) {
    super(`${dir} is in use by process ${pid}; stop it or choose another data directory`);
    this.name = 'DirLockedError';
  }
}

export interface DirLock {
  release(): Promise<void>;
}

export async function lockDir(dir: string): Promise<DirLock> {
  const path = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return { release: () => rm(path, { force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && alive(pid)) throw new DirLockedError(dir, pid);
    await rm(path, { force: true });
  }
  throw new Error(`could not lock ${dir}: another process keeps recreating ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
