// Controller families share the manager's informers (one list and one watch per kind per process)
// and only start, and stop, informers of their own when built without a manager.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { parseHostControllerConfig } from '../../src/controllers/baremetalhost/config.ts';
import { buildHostController } from '../../src/controllers/baremetalhost/family.ts';
import { GROUP_KIND, HOST_KIND, PROFILE_KIND } from '../../src/controllers/baremetalhost/kinds.ts';
import type { ControllerDeps } from '../../src/controllers/index.ts';
import { FamilyInformers } from '../../src/controllers/informers.ts';
import { StoreEventRecorder } from '../../src/runtime/events.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { Manager } from '../../src/runtime/manager.ts';
import { MemoryStore } from '../../src/stores/memory.ts';

function deps(store: MemoryStore, manager?: Manager): ControllerDeps {
  return {
    store,
    events: new StoreEventRecorder({ store, component: 'test' }),
    logger: silentLogger,
    registry: new Registry(),
    namespace: 'lab',
    config: {},
    ...(manager ? { informer: (kind) => manager.informer(kind) } : {}),
  };
}

test('with a manager, the host controller uses its informers and leaves them running when it stops', async () => {
  const store = new MemoryStore();
  const manager = new Manager({ store, registry: new Registry(), namespace: 'lab' });
  const built = buildHostController(deps(store, manager), parseHostControllerConfig({}));
  assert.equal(built.env.hosts, manager.informer(HOST_KIND));
  assert.equal(built.env.groups, manager.informer(GROUP_KIND));
  assert.equal(built.env.profiles, manager.informer(PROFILE_KIND));
  await manager.start();
  await built.env.hosts.waitForSync();
  await built.stop();
  assert.equal(manager.informer(HOST_KIND).running, true, "the manager's informer still runs");
  await manager.stop();
  await store.close();
});

test('without a manager, a family starts its own informers and stops them', async () => {
  const store = new MemoryStore();
  const informers = new FamilyInformers(deps(store), silentLogger);
  const hosts = informers.get(HOST_KIND);
  assert.equal(hosts.running, true);
  await hosts.waitForSync();
  await informers.stop();
  assert.equal(hosts.running, false);
  await store.close();
});
