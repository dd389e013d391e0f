// The same seed-fleet sync with the embedded file store instead of a kube-apiserver.
import { seedSuite } from './seed-suite.ts';
import { startFileBackend } from './world.ts';

seedSuite('file store', startFileBackend);
