import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/stores/sqlite.ts';
import { storeConformanceSuite } from '../conformance/store-suite.ts';

storeConformanceSuite('sqlite store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'metalbox-sqlite-store-'));
  let store = await SqliteStore.open(dir);
  return {
    get store() {
      return store;
    },
    namespace: 'default',
    otherNamespace: 'other',
    compact: async () => store.compact(),
    reopen: async () => {
      await store.close();
      store = await SqliteStore.open(dir);
      return store;
    },
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
