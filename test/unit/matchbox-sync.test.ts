// The Matchbox sync's pure parts: its config section, the status it writes, the reference index,
// and the family's wiring.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { controllerFamilies } from '../../src/controllers/index.ts';
import { MatchboxSyncConfigError, parseMatchboxSyncConfig } from '../../src/controllers/matchbox/config.ts';
import type { Endpoint } from '../../src/controllers/matchbox/endpoints.ts';
import { matchboxFamily } from '../../src/controllers/matchbox/family.ts';
import type { GroupObject, ProfileObject } from '../../src/controllers/matchbox/kinds.ts';
import { MatchboxSyncMetrics } from '../../src/controllers/matchbox/metrics.ts';
import { ReferenceIndex } from '../../src/controllers/matchbox/references.ts';
import { endpointStatuses, syncedCondition } from '../../src/controllers/matchbox/status.ts';
import { verifyGroupBootAnswer } from '../../src/controllers/matchbox/verify.ts';
import { MatchboxUnreachableError } from '../../src/matchbox/errors.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { MemoryStore } from '../../src/stores/memory.ts';

const files = {
  caFile: '/etc/metalbox/ca.crt',
  certFile: '/etc/metalbox/tls.crt',
  keyFile: '/etc/metalbox/tls.key',
};

function configError(section: unknown): MatchboxSyncConfigError {
  try {
    parseMatchboxSyncConfig(section);
  } catch (error) {
    assert.ok(error instanceof MatchboxSyncConfigError, String(error));
    return error;
  }
  assert.fail('the config was accepted');
}

describe('matchbox config section', () => {
  it('accepts endpoints with Secret or file credentials and fills in the defaults', () => {
    const config = parseMatchboxSyncConfig({
      endpoints: [
        {
          name: 'mgmt-01',
          endpoint: '10.0.20.11:8081',
          httpURL: 'http://10.0.20.11:8080',
          tls: { secretRef: { namespace: 'metalbox-system', name: 'mb' } },
        },
        { name: 'mgmt-02', endpoint: '[fd00::12]:8081', tls: files },
      ],
    });
    assert.equal(config.driftScanIntervalSeconds, 300);
    assert.equal(config.verifyBootAnswers, true);
    assert.equal(config.workers, 8);
    assert.equal(config.endpoints[0]!.timeoutSeconds, 10);
    assert.deepEqual(config.endpoints[1]!.tls, files);
  });

  it('names the field of an endpoint given with a scheme', () => {
    const error = configError({ endpoints: [{ name: 'a', endpoint: 'https://mb:8081', tls: files }] });
    assert.deepEqual(error.fields, ['matchbox.endpoints[0].endpoint']);
    assert.match(error.message, /matchbox\.endpoints\[0\]\.endpoint: .*must be host:port without a scheme/);
  });

  it('refuses an endpoint listed twice', () => {
    const error = configError({
      endpoints: [
        { name: 'a', endpoint: 'mb:8081', tls: files },
        { name: 'a', endpoint: 'mb:8081', tls: files },
      ],
    });
    assert.deepEqual(error.fields, ['matchbox.endpoints[1].name', 'matchbox.endpoints[1].endpoint']);
    assert.match(error.message, /"a" is also endpoints\[0\]\.name; each endpoint is listed once/);
  });

  it('refuses credentials that are neither a Secret nor files, naming the field', () => {
    const error = configError({ endpoints: [{ name: 'a', endpoint: 'mb:8081', tls: { caFile: '/ca' } }] });
    assert.deepEqual(error.fields, ['matchbox.endpoints[0].tls']);
    assert.match(error.message, /must be either \{secretRef: \{namespace, name\}\}/);
  });

  it('requires at least one endpoint', () => {
    assert.deepEqual(configError({ endpoints: [] }).fields, ['matchbox.endpoints']);
  });
});

describe('sync status', () => {
  const endpoints = [{ address: 'a:1' }, { address: 'b:1' }];
  const names = new Map([
    ['a:1', 'a'],
    ['b:1', 'b'],
  ]);
  const now = new Date('2026-01-02T03:04:05Z');

  it('is Synced only when every endpoint holds the current generation', () => {
    const entries = endpointStatuses(
      [{ endpoint: 'b:1', observedGeneration: 1, synced: true }],
      endpoints,
      2,
      new Map([['a:1', { type: 'written' }]]),
      now,
    );
    assert.deepEqual(entries, [
      { endpoint: 'a:1', observedGeneration: 2, synced: true, lastSyncTime: '2026-01-02T03:04:05Z' },
      { endpoint: 'b:1', observedGeneration: 1, synced: true },
    ]);
    const c = syncedCondition(entries, 2, names);
    assert.equal(c.status, 'False');
    assert.equal(c.reason, 'Pending');
    assert.equal(c.message, 'generation 2 is not on 1 of 2 Matchbox endpoints: b (b:1): not written yet');
  });

  it('keeps the generation an endpoint last held when a write fails, and takes the reason from the error', () => {
    const error = new MatchboxUnreachableError('b:1', 'refused', 'connection refused.');
    const entries = endpointStatuses(
      [{ endpoint: 'b:1', observedGeneration: 1, synced: true, lastSyncTime: '2026-01-01T00:00:00Z' }],
      endpoints,
      2,
      new Map([
        ['a:1', { type: 'written' }],
        ['b:1', { type: 'failed', error }],
      ]),
      now,
    );
    assert.deepEqual(entries[1], {
      endpoint: 'b:1',
      observedGeneration: 1,
      synced: false,
      lastError: 'Matchbox at b:1 is unreachable: connection refused.',
      lastSyncTime: '2026-01-01T00:00:00Z',
    });
    assert.equal(syncedCondition(entries, 2, names, new Map([['b:1', error]])).reason, 'Unreachable');
  });

  it('drops entries of endpoints no longer configured', () => {
    const entries = endpointStatuses(
      [{ endpoint: 'gone:1', synced: true }],
      [{ address: 'a:1' }],
      1,
      new Map([['a:1', { type: 'current' }]]),
      now,
    );
    assert.deepEqual(entries, [{ endpoint: 'a:1', observedGeneration: 1, synced: true }]);
    assert.equal(syncedCondition(entries, 1, names).status, 'True');
  });
});

describe('reference index', () => {
  it('maps a target back to the objects referring to it, following changes', () => {
    const index = new ReferenceIndex();
    index.set('ns/g1', ['ns/p1']);
    index.set('ns/g2', ['ns/p1']);
    index.set('ns/g1', ['ns/p2']);
    assert.deepEqual(index.referrers({ namespace: 'ns', name: 'p1' }), [{ namespace: 'ns', name: 'g2' }]);
    index.delete('ns/g2');
    assert.deepEqual(index.referrers({ namespace: 'ns', name: 'p1' }), []);
  });
});

describe('matchbox controller family', () => {
  const deps = (config: Record<string, unknown>) => ({
    store: new MemoryStore(),
    events: { event() {} },
    logger: silentLogger,
    registry: new Registry(),
    namespace: 'metalbox-system',
    config,
  });

  it('is registered', () => {
    assert.ok(controllerFamilies.includes(matchboxFamily));
  });

  it('builds the profile and group controllers from the config section', async () => {
    const built = await matchboxFamily.build(
      deps({ matchbox: { endpoints: [{ name: 'a', endpoint: 'mb:8081', tls: files }] } }),
    );
    assert.deepEqual(
      built.controllers.map((c) => [c.name, c.for.kind, (c.watches ?? []).map((w) => w.kind.kind)]),
      [
        ['matchboxprofile-sync', 'MatchboxProfile', ['Secret']],
        ['matchboxgroup-sync', 'MatchboxGroup', ['MatchboxProfile']],
        ['matchboxgroup-bootanswer', 'MatchboxGroup', ['MatchboxProfile']],
      ],
    );
    await built.stop?.();
  });

  it('leaves boot-answer verification out when it is turned off', async () => {
    const built = await matchboxFamily.build(
      deps({
        matchbox: { endpoints: [{ name: 'a', endpoint: 'mb:8081', tls: files }], verifyBootAnswers: false },
      }),
    );
    assert.deepEqual(
      built.controllers.map((c) => c.name),
      ['matchboxprofile-sync', 'matchboxgroup-sync'],
    );
    await built.stop?.();
  });

  it('runs nothing without a matchbox section, and refuses an invalid one', async () => {
    assert.deepEqual((await matchboxFamily.build(deps({}))).controllers, []);
    await assert.rejects(
      matchboxFamily.build(deps({ matchbox: { endpoints: 'x' } })),
      MatchboxSyncConfigError,
    );
  });
});

describe('boot answer verification', () => {
  // Nothing listens on port 9 (discard): a check that does go out fails.
  const endpoints = [
    { name: 'a', address: 'a:1', httpURL: 'http://127.0.0.1:9', timeoutMs: 500 },
    { name: 'b', address: 'b:1', httpURL: 'http://127.0.0.1:9', timeoutMs: 500 },
  ] as unknown as Endpoint[];
  const current = (generation: number) => ({
    endpoints: [
      { endpoint: 'a:1', observedGeneration: generation, synced: true },
      { endpoint: 'b:1', observedGeneration: generation, synced: true },
    ],
  });
  const profile = {
    apiVersion: 'metalbox.io/v1alpha1',
    kind: 'MatchboxProfile',
    metadata: { name: 'p', namespace: 'ns', generation: 3 },
    spec: { kernel: '/k', args: ['x=1'] },
    status: current(3),
  } as unknown as ProfileObject;
  const verified = {
    type: 'BootAnswerVerified',
    status: 'True' as const,
    reason: 'Verified',
    message: 'GET /ipxe?mac=aa:bb:cc:dd:ee:01 boots MatchboxProfile ns/p (generation 3) on: a, b',
    observedGeneration: 2,
    lastTransitionTime: '2026-01-01T00:00:00Z',
  };
  const group = (conditions: unknown[]) =>
    ({
      apiVersion: 'metalbox.io/v1alpha1',
      kind: 'MatchboxGroup',
      metadata: { name: 'g', namespace: 'ns', generation: 2 },
      spec: { profileRef: { name: 'p' }, selector: { mac: 'aa:bb:cc:dd:ee:01' } },
      status: { ...current(2), conditions },
    }) as unknown as GroupObject;
  const input = (g: GroupObject, p: ProfileObject = profile, written = new Set<string>()) => ({
    group: g,
    rendered: { id: 'ns.g', profile: 'ns.p', selector: { mac: 'aa:bb:cc:dd:ee:01' }, metadata: {} },
    status: g.status!,
    profile: p,
    endpoints,
    written,
    metrics: new MatchboxSyncMetrics(new Registry()),
  });

  it('keeps a True verdict computed from the same group and profile generations without asking again', async () => {
    const result = await verifyGroupBootAnswer(input(group([verified])));
    assert.deepEqual(result, { condition: verified, failed: false });
  });

  it('asks again when the profile changed or the group was just written, and reports who did not answer', async () => {
    const newer = {
      ...profile,
      metadata: { ...profile.metadata, generation: 4 },
      status: current(4),
    } as ProfileObject;
    for (const result of [
      await verifyGroupBootAnswer(input(group([verified]), newer)),
      await verifyGroupBootAnswer(input(group([verified]), profile, new Set(['a:1']))),
    ]) {
      assert.equal(result.failed, true);
      assert.equal(result.condition?.status, 'False');
      assert.equal(result.condition?.reason, 'HTTPUnreachable');
      assert.match(
        result.condition!.message,
        /^GET \/ipxe\?mac=aa:bb:cc:dd:ee:01 does not boot MatchboxProfile ns\/p/,
      );
    }
  });

  it('waits, without asking, while the profile is on no endpoint yet', async () => {
    const unsynced = { ...profile, status: {} } as ProfileObject;
    const result = await verifyGroupBootAnswer(input(group([]), unsynced));
    assert.equal(result.failed, false);
    assert.equal(result.condition?.status, 'Unknown');
    assert.equal(result.condition?.reason, 'WaitingForSync');
  });
});
