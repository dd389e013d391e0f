// The same seed-fleet sync with the embedded SQLite store (--store file:) instead of a kube-apiserver.
import { seedSuite } from './seed-suite.ts';
import { startFileBackend } from './world.ts';

seedSuite('file store', startFileBackend);
