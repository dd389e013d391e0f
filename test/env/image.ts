// Builds the metalbox container image with the project's own `scripts/image` (crane, no daemon).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { peerBinary } from './peers.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));

export interface BuiltImage {
  /** The docker-archive written by scripts/image (its last printed line). */
  archive: string;
  /** metalbox:<package.json version> */
  tag: string;
  /** The image manifest's digest, as a registry would report it after a push. */
  digest: string;
  seconds: number;
}

export function packageVersion(): string {
  return (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
}

export async function buildImage(outDir: string): Promise<BuiltImage> {
  const started = performance.now();
  const { stdout } = await run('bash', ['scripts/image', outDir], {
    cwd: repo,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((e: { message: string; stderr?: string }) => {
    throw new Error(`scripts/image failed: ${e.message}\n${e.stderr ?? ''}`);
  });
  const archive = stdout.trim().split('\n').at(-1) ?? '';
  const digest = (await run(peerBinary('crane'), ['digest', '--tarball', archive])).stdout.trim();
  return {
    archive,
    tag: `metalbox:${packageVersion()}`,
    digest,
    seconds: (performance.now() - started) / 1000,
  };
}
