// The seed fleet and day-2 changes synced to the real Matchbox pair from a real kube-apiserver.
import { seedSuite } from './seed-suite.ts';
import { startKubeBackend } from './world.ts';

seedSuite('kube-apiserver', startKubeBackend);
