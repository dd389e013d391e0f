import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import type { ControllerDeps } from '../../src/controllers/index.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { parseTalosConfig } from '../../src/talos/config.ts';
import { buildTalos } from '../../src/talos/family.ts';
import { applyPatch, parsePatch } from '../../src/talos/merge.ts';
import type { ConfigDocument } from '../../src/talos/yaml-stream.ts';

const config = (value: Record<string, unknown>): ConfigDocument[] => [{ value, origin: 'base' }];
const patch = (text: string) => parsePatch(text, 'patch');

test('strategic merge: interfaces merge by name, VLANs by id, other lists append, podSubnets replace', () => {
  const base = config({
    version: 'v1alpha1',
    machine: {
      certSANs: ['a'],
      network: { interfaces: [{ interface: 'eth0', mtu: 1500, vlans: [{ vlanId: 10, dhcp: true }] }] },
    },
    cluster: { network: { podSubnets: ['10.244.0.0/16'] } },
  });
  const [out] = applyPatch(
    base,
    patch(
      'machine:\n  certSANs: [b]\n  network:\n    interfaces:\n      - interface: eth0\n        mtu: 9000\n        vlans:\n          - vlanId: 10\n            mtu: 1400\n          - vlanId: 11\n      - interface: eth1\ncluster:\n  network:\n    podSubnets: [10.250.0.0/16]\n',
    ),
  );
  assert.deepEqual(out!.value, {
    version: 'v1alpha1',
    machine: {
      certSANs: ['a', 'b'],
      network: {
        interfaces: [
          { interface: 'eth0', mtu: 9000, vlans: [{ vlanId: 10, dhcp: true, mtu: 1400 }, { vlanId: 11 }] },
          { interface: 'eth1' },
        ],
      },
    },
    cluster: { network: { podSubnets: ['10.250.0.0/16'] } },
  });
});

test('strategic merge: "" and 0 do not overwrite, false does, and $patch: delete removes list elements', () => {
  const base = config({ machine: { install: { disk: '/dev/sda', wipe: true }, certSANs: ['a', 'b'] } });
  const [out] = applyPatch(
    base,
    patch(
      'machine:\n  install:\n    disk: ""\n    wipe: false\n  certSANs:\n    - $patch: delete\n      x: 1\n',
    ),
  );
  assert.deepEqual(out!.value, {
    machine: { install: { disk: '/dev/sda', wipe: false }, certSANs: ['a', 'b'] },
  });
  const [gone] = applyPatch(
    config({ machine: { network: { interfaces: [{ interface: 'eth0' }, { interface: 'eth1' }] } } }),
    patch('machine:\n  network:\n    interfaces:\n      - interface: eth0\n        $patch: delete\n'),
  );
  assert.deepEqual(gone!.value, { machine: { network: { interfaces: [{ interface: 'eth1' }] } } });
});

test('deleting a document the config does not have is an error naming the patch', () => {
  assert.throws(
    () =>
      applyPatch(
        config({ version: 'v1alpha1' }),
        patch('apiVersion: v1alpha1\nkind: ResolverConfig\n$patch: delete\n'),
      ),
    /patch: \$patch: delete names document ResolverConfig, which the config does not have/,
  );
});

test('the talos config section: defaults, and errors that name the field', () => {
  const parsed = parseTalosConfig({ configServer: { advertiseURL: 'http://10.0.20.5:8081' } });
  assert.equal(parsed.tokenTTLSeconds, 3600);
  assert.equal(parsed.eventSink.listen, '0.0.0.0:4002');
  assert.throws(() => parseTalosConfig({ tokenTTLSeconds: 5 }), /talos\.tokenTTLSeconds/);
  assert.throws(() => parseTalosConfig({ eventSink: { listen: 'nope' } }), /talos\.eventSink\.listen/);
  assert.throws(
    () => parseTalosConfig({ configServer: { advertiseURL: 'ftp://x' } }),
    /talos\.configServer\.advertiseURL/,
  );
});

test('listening on all addresses without an advertised URL is refused at start', async () => {
  const deps: ControllerDeps = {
    store: new MemoryStore(),
    events: { event() {} },
    logger: silentLogger,
    registry: new Registry(),
    namespace: 'metalbox-system',
    config: {},
  };
  await assert.rejects(
    buildTalos(deps, parseTalosConfig({})),
    /talos\.configServer\.advertiseURL is required/,
  );
});
