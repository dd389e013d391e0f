import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { fakeBaseConfig, fakeBaseConfigSecret } from '../../src/sim/talos-base-config.ts';
import { secretText } from '../../src/talos/kinds.ts';
import { renderHostConfig } from '../../src/talos/render.ts';
import { seedHosts, seedTalosConfig } from '../fixtures/talos/seed.ts';

for (const version of ['v1.10', 'v1.12'] as const) {
  test(`the demo's fake base config renders for every seed host with contract ${version}`, () => {
    const tmc = seedTalosConfig(version);
    for (const host of seedHosts()) {
      const { config } = renderHostConfig({
        host: { name: host.metadata.name ?? '', spec: host.spec },
        spec: tmc.spec,
        base: { text: fakeBaseConfig(host.spec.role, tmc.spec.clusterName ?? ''), field: 'fake base' },
        rolePatches: [],
        hostPatches: [],
        eventSinkEndpoint: '127.0.0.1:4002',
      });
      const machine = parseAllDocuments(config)[0]!.toJS() as { machine: { type: string } };
      assert.equal(machine.machine.type, host.spec.role);
    }
  });
}

test("the demo's fake base-config Secret is labelled SIMULATION and holds no PEM key material", () => {
  const secret = fakeBaseConfigSecret({ namespace: 'ns', name: 'base', clusterName: 'mycluster' });
  assert.equal(secret.metadata.labels?.['metalbox.io/simulation'], 'true');
  for (const key of ['controlplane.yaml', 'worker.yaml']) {
    const text = secretText(secret, key) ?? '';
    assert.match(text, /^# SIMULATION/);
    const decoded = [...text.matchAll(/: ([A-Za-z0-9+/=]{40,})$/gm)].map((m) =>
      Buffer.from(m[1]!, 'base64').toString('utf8'),
    );
    assert.ok(decoded.length > 0);
    for (const d of decoded) assert.doesNotMatch(d, /BEGIN [A-Z ]*PRIVATE KEY/);
  }
});
