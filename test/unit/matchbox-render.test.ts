import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MatchboxGroup } from '../../src/crds/matchboxgroup.ts';
import type { MatchboxProfile } from '../../src/crds/matchboxprofile.ts';
import { normalizeMac, normalizeSelector, sameGroup, sameProfile } from '../../src/matchbox/objects.ts';
import {
  isOwnedId,
  matchboxId,
  parseMatchboxId,
  RenderError,
  renderGroup,
  renderProfile,
} from '../../src/matchbox/render.ts';

const profile = (spec: MatchboxProfile['spec'], name = 'talos-control-plane'): MatchboxProfile => ({
  apiVersion: 'metalbox.io/v1alpha1',
  kind: 'MatchboxProfile',
  metadata: { name, namespace: 'metal' },
  spec,
});
const group = (spec: MatchboxGroup['spec'], name = 'cp-01'): MatchboxGroup => ({
  apiVersion: 'metalbox.io/v1alpha1',
  kind: 'MatchboxGroup',
  metadata: { name, namespace: 'metal' },
  spec,
});

test('a profile renders to the Matchbox object with id <namespace>.<name>', () => {
  const rendered = renderProfile(
    profile({
      displayName: 'Talos Linux - Control Plane',
      kernel: '/assets/vmlinuz',
      initrd: ['/assets/initramfs.xz'],
      args: ['initrd=initramfs.xz', 'talos.platform=metal'],
    }),
  );
  assert.equal(
    JSON.stringify(rendered),
    JSON.stringify({
      profile: {
        id: 'metal.talos-control-plane',
        name: 'Talos Linux - Control Plane',
        boot: {
          kernel: '/assets/vmlinuz',
          initrd: ['/assets/initramfs.xz'],
          args: ['initrd=initramfs.xz', 'talos.platform=metal'],
        },
      },
    }),
  );
});

test('a profile without kernel has no boot section, and empty lists stay lists', () => {
  assert.deepEqual(renderProfile(profile({})).profile, { id: 'metal.talos-control-plane' });
  assert.deepEqual(renderProfile(profile({ kernel: '/k' })).profile.boot, {
    kernel: '/k',
    initrd: [],
    args: [],
  });
});

test('a generic config is linked by generic_id and carries its source', () => {
  const inline = renderProfile(profile({ kernel: '/k', genericConfig: { inline: 'hello {{.mac}}' } }));
  assert.equal(inline.profile.generic_id, 'metal.talos-control-plane');
  assert.deepEqual(inline.generic, { name: 'metal.talos-control-plane', inline: 'hello {{.mac}}' });
  const fromSecret = renderProfile(
    profile({ kernel: '/k', genericConfig: { secretRef: { name: 'cfg', key: 'config' } } }),
  );
  assert.deepEqual(fromSecret.generic, {
    name: 'metal.talos-control-plane',
    secretRef: { name: 'cfg', key: 'config', namespace: 'metal' },
  });
});

test('a group renders with its profile id, a normalised MAC and metadata as an object', () => {
  const rendered = renderGroup(
    group({
      displayName: 'Control Plane Node 1',
      profileRef: { name: 'talos-control-plane' },
      selector: { mac: 'AA-BB-CC-DD-EE-01', os: 'installed' },
      metadata: { hostname: 'cp-01' },
    }),
  );
  assert.equal(
    JSON.stringify(rendered),
    JSON.stringify({
      id: 'metal.cp-01',
      name: 'Control Plane Node 1',
      profile: 'metal.talos-control-plane',
      selector: { mac: 'aa:bb:cc:dd:ee:01', os: 'installed' },
      metadata: { hostname: 'cp-01' },
    }),
  );
  assert.deepEqual(renderGroup(group({ profileRef: { name: 'p' } })), {
    id: 'metal.cp-01',
    profile: 'metal.p',
    selector: {},
    metadata: {},
  });
});

test('a group with a selector mac that is not a MAC is a RenderError naming the field', () => {
  assert.throws(
    () => renderGroup(group({ profileRef: { name: 'p' }, selector: { MAC: 'zz:zz' } })),
    (error: unknown) =>
      error instanceof RenderError &&
      error.field === 'spec.selector.MAC' &&
      error.message ===
        'MatchboxGroup metal/cp-01: spec.selector.MAC: "zz:zz" is not a MAC address (use aa:bb:cc:dd:ee:ff)',
  );
});

test('an object without a namespace, or whose id would not fit a file name, is a RenderError', () => {
  const noNamespace = { ...profile({}), metadata: { name: 'x' } };
  assert.throws(() => renderProfile(noNamespace), /metadata\.namespace: is required/);
  assert.throws(
    () => renderProfile(profile({}, `${'a'.repeat(63)}.${'b'.repeat(190)}`)),
    /must stay within 250/,
  );
});

test('ids metalbox writes parse back to their resource; foreign ids do not', () => {
  assert.equal(matchboxId({ namespace: 'metal', name: 'cp-01.rack2' }), 'metal.cp-01.rack2');
  assert.deepEqual(parseMatchboxId('metal.cp-01.rack2'), { namespace: 'metal', name: 'cp-01.rack2' });
  for (const foreign of [
    'talos-cp-01',
    'Talos.cp',
    'metal.',
    '.cp',
    'metal.CP-01',
    'metal.cp_01',
    'x'.repeat(64) + '.cp',
  ]) {
    assert.equal(isOwnedId(foreign), false, foreign);
  }
  assert.equal(isOwnedId('metalbox-system.talos-worker'), true);
});

test('MACs normalise as Go net.ParseMAC does', () => {
  assert.equal(normalizeMac('AA:BB:CC:DD:EE:01'), 'aa:bb:cc:dd:ee:01');
  assert.equal(normalizeMac('aa-bb-cc-dd-ee-01'), 'aa:bb:cc:dd:ee:01');
  assert.equal(normalizeMac('aabb.ccdd.ee01'), 'aa:bb:cc:dd:ee:01');
  assert.equal(normalizeMac('00:00:00:00:fe:80:00:00'), '00:00:00:00:fe:80:00:00');
  for (const bad of [
    'aa:bb:cc:dd:ee',
    'aa:bb-cc:dd:ee:01',
    'aabbccddee01',
    'gg:bb:cc:dd:ee:01',
    'a:b:c:d:e:f',
    '',
  ]) {
    assert.equal(normalizeMac(bad), undefined, bad);
  }
  assert.deepEqual(normalizeSelector({ Mac: 'AA-BB-CC-DD-EE-01', uuid: 'ABC' }), {
    Mac: 'aa:bb:cc:dd:ee:01',
    uuid: 'ABC',
  });
});

test('object comparison ignores key order and absent optionals but not content', () => {
  const a = {
    id: 'm.g',
    profile: 'm.p',
    selector: { mac: 'aa:bb:cc:dd:ee:01' },
    metadata: { a: 1, b: { c: 2 } },
  };
  const b = {
    metadata: { b: { c: 2 }, a: 1 },
    selector: { mac: 'aa:bb:cc:dd:ee:01' },
    profile: 'm.p',
    id: 'm.g',
    name: undefined,
  };
  assert.equal(sameGroup(a, b), true);
  assert.equal(sameGroup(a, { ...a, metadata: { a: 2, b: { c: 2 } } }), false);
  assert.equal(
    sameProfile(
      { id: 'p', boot: { kernel: 'k', initrd: [], args: ['a', 'b'] } },
      { id: 'p', boot: { kernel: 'k', initrd: [], args: ['b', 'a'] } },
    ),
    false,
  );
});
