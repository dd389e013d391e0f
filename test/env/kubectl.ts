// The machine's kubectl (KUBECTL, /usr/bin/kubectl or PATH): the tool users apply deploy/ with.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export function findKubectl(): string | undefined {
  const candidates = [
    process.env.KUBECTL,
    '/usr/bin/kubectl',
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'kubectl')),
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Runs kubectl against a kubeconfig; a failure throws with kubectl's own output. */
export async function runKubectl(
  kubeconfig: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  const kubectl = findKubectl();
  if (!kubectl) throw new Error('kubectl is not installed (set KUBECTL or install it at /usr/bin/kubectl)');
  try {
    return await run(kubectl, ['--kubeconfig', kubeconfig, ...args], {
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}
