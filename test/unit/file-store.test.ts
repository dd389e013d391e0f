import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../src/stores/file.ts';
import { storeConformanceSuite } from '../conformance/store-suite.ts';

storeConformanceSuite('file store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'metalbox-file-store-'));
  let store = await FileStore.open(dir);
  return {
    get store() {
      return store;
    },
    namespace: 'default',
    otherNamespace: 'other',
    compact: async () => store.compact(),
    reopen: async () => {
      await store.close();
      store = await FileStore.open(dir);
      return store;
    },
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
