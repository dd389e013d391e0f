// The owner mark in Matchbox names, and the default owner identity of a file store.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { OpenedStore } from '../../src/cli/store-flag.ts';
import { storeOwner } from '../../src/cli/store-owner.ts';
import { parseMatchboxSyncConfig } from '../../src/controllers/matchbox/config.ts';
import { displayNameOf, holderOf, markedName, ownerOf } from '../../src/matchbox/owner.ts';
import { renderGroup, renderProfile } from '../../src/matchbox/render.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { scratchDir } from '../env/peers.ts';

const profile = {
  apiVersion: 'metalbox.io/v1alpha1' as const,
  kind: 'MatchboxProfile' as const,
  metadata: { name: 'worker', namespace: 'prod' },
  spec: { displayName: 'Talos worker', kernel: '/assets/vmlinuz' },
};

test('an owner renders into the Matchbox name, before the displayName, and reads back', () => {
  const rendered = renderProfile(profile, 'mgmt-a').profile;
  assert.equal(rendered.name, 'metalbox:mgmt-a Talos worker');
  assert.equal(ownerOf(rendered), 'mgmt-a');
  assert.equal(displayNameOf(rendered.name), 'Talos worker');
  const bare = renderGroup(
    {
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxGroup',
      metadata: { name: 'w-01', namespace: 'prod' },
      spec: { profileRef: { name: 'worker' }, selector: { mac: 'AA:BB:CC:DD:EE:01' } },
    },
    'mgmt-a',
  );
  assert.equal(bare.name, 'metalbox:mgmt-a');
  assert.equal(displayNameOf(bare.name), undefined);
  // Without an owner (metalbox render), the name is the displayName as before.
  assert.equal(renderProfile(profile).profile.name, 'Talos worker');
});

test('names without a well-formed mark carry no owner, and holders are told apart', () => {
  for (const name of [undefined, '', 'Talos worker', 'metalbox:', 'metalbox:Upper case', 'metalbox: x']) {
    assert.equal(ownerOf({ name }), undefined, String(name));
    assert.equal(displayNameOf(name), name);
  }
  assert.equal(holderOf(undefined, 'a'), 'absent');
  assert.equal(holderOf({ name: 'Talos' }, 'a'), 'unmarked');
  assert.equal(holderOf({ name: markedName('a', 'x') }, 'a'), 'ours');
  assert.deepEqual(holderOf({ name: markedName('b', undefined) }, 'a'), { other: 'b' });
});

test('matchbox.owner must be a DNS label; the error names the field', () => {
  const endpoints = [
    { name: 'a', endpoint: '127.0.0.1:8081', tls: { caFile: 'c', certFile: 'c', keyFile: 'k' } },
  ];
  assert.equal(parseMatchboxSyncConfig({ endpoints, owner: 'prod-mgmt' }).owner, 'prod-mgmt');
  assert.throws(
    () => parseMatchboxSyncConfig({ endpoints, owner: 'Prod mgmt' }),
    /matchbox\.owner: "Prod mgmt" must be/,
  );
});

test('a file store’s default owner is written once into its directory: the same for every process, different per store', async () => {
  const one = scratchDir('owner-one');
  const two = scratchDir('owner-two');
  try {
    const opened = (dir: string): OpenedStore => ({
      store: new MemoryStore(),
      spec: { type: 'file', dir },
      close: async () => {},
    });
    const first = await storeOwner(opened(one.dir));
    assert.match(first, /^file-[0-9a-f]{12}$/);
    assert.equal(await storeOwner(opened(one.dir)), first);
    assert.equal(readFileSync(join(one.dir, 'matchbox-owner'), 'utf8').trim(), first);
    assert.notEqual(await storeOwner(opened(two.dir)), first);
  } finally {
    one.remove();
    two.remove();
  }
});
