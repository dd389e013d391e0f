// `npm run image` (scripts/image): an OCI image built without a daemon or base image, reproducible
// (two builds from the same inputs give the same digest and the same archive bytes), tagged
// metalbox:<package.json version>, running as uid 65532 with no shell in it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { type BuiltImage, buildImage, packageVersion } from '../../env/image.ts';
import { scratchDir } from '../../env/peers.ts';

const run = promisify(execFile);
const scratch = scratchDir('image');
let first: BuiltImage;
let second: BuiltImage;

before(async () => {
  first = await buildImage(join(scratch.dir, 'a'));
  second = await buildImage(join(scratch.dir, 'b'));
});
after(() => scratch.remove());

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface ArchiveManifest {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

async function unpack(archive: string, dir: string): Promise<{ manifest: ArchiveManifest; root: string }> {
  mkdirSync(dir, { recursive: true });
  await run('tar', ['-xf', archive, '-C', dir]);
  const [manifest] = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ArchiveManifest[];
  assert.ok(manifest, 'the archive has a manifest.json entry');
  const root = join(dir, 'rootfs');
  mkdirSync(root);
  for (const layer of manifest.Layers) await run('tar', ['-xzf', join(dir, layer), '-C', root]);
  return { manifest, root };
}

test('two builds from the same inputs give the same digest and the same archive bytes', (t) => {
  t.diagnostic(
    `builds took ${first.seconds.toFixed(1)} s and ${second.seconds.toFixed(1)} s; ${first.digest}`,
  );
  assert.match(first.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(second.digest, first.digest);
  assert.equal(sha256(second.archive), sha256(first.archive));
});

test('the archive is tagged metalbox:<package.json version> and runs metalbox as uid 65532', async (t) => {
  const { manifest, root } = await unpack(first.archive, join(scratch.dir, 'unpacked'));
  assert.deepEqual(manifest.RepoTags, [`metalbox:${packageVersion()}`]);
  const config = JSON.parse(readFileSync(join(scratch.dir, 'unpacked', manifest.Config), 'utf8')) as {
    os: string;
    architecture: string;
    config: { User: string; Entrypoint: string[]; Env: string[] };
  };
  assert.equal(config.os, 'linux');
  assert.equal(config.architecture, 'amd64');
  assert.equal(config.config.User, '65532:65532');
  assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/metalbox']);
  assert.ok(config.config.Env.includes('PATH=/usr/local/bin:/usr/bin:/bin'));

  const { stdout: files } = await run('find', [root, '-mindepth', '1', '-printf', '%U %y %m %P\n'], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const entries = files
    .trim()
    .split('\n')
    .map((line) => {
      const [uid = '', type = '', mode = '', ...path] = line.split(' ');
      return { uid, type, mode: Number.parseInt(mode, 8), path: path.join(' ') };
    });
  for (const shell of ['bin/sh', 'usr/bin/sh', 'bin/bash', 'usr/bin/bash', 'bin/busybox']) {
    assert.ok(!entries.some((e) => e.path === shell), `${shell} is in the image`);
  }
  const notRoot = entries.filter((e) => e.uid !== '0').map((e) => e.path);
  assert.deepEqual(notRoot, [], 'every file belongs to root (the controller cannot change its own code)');
  const writable = entries.filter((e) => e.type !== 'l' && (e.mode & 0o022) !== 0);
  assert.deepEqual(
    writable.map((e) => [e.path, e.mode.toString(8)]),
    [['tmp', '1777']],
    'only /tmp is writable by the image user',
  );
  t.diagnostic(
    `${entries.length} files; archive ${(readFileSync(first.archive).length / 1e6).toFixed(1)} MB`,
  );

  // No shell: the entrypoint is a Node script, started directly, as the image's user, with no env.
  const { stdout } = await run(
    '/usr/sbin/chroot',
    ['--userspec=65532:65532', root, '/usr/local/bin/metalbox', '--version'],
    { env: { PATH: '/usr/local/bin:/usr/bin:/bin' } },
  );
  assert.equal(stdout.trim(), `metalbox ${packageVersion()}`);
});
