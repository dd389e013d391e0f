// `metalbox controller`: opens the store (any the operator CLI accepts: kube, file, etcd), builds the
// logger, metrics registry, event recorder and (with --leader-elect) the store's elector (a Lease on
// kube, an etcd election on etcd), hands them to every controller family, and runs the manager until
// SIGTERM/SIGINT (graceful: in-flight reconciles finish, the Lease is released; exit 0) or until
// leadership is lost (exit 1, so the pod restarts as a standby and never overlaps a new leader).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { addControllerFamilies, type BuiltFamilies } from '../controllers/index.ts';
import { StoreEventRecorder } from '../runtime/events.ts';
import { AlwaysLeader, type LeaderElector } from '../runtime/leader.ts';
import { errorFields, type Logger } from '../runtime/logger.ts';
import { Manager, type ManagerExit } from '../runtime/manager.ts';
import type { SqliteElector } from '../stores/sqlite-leader.ts';
import {
  CONTROLLER_USAGE,
  type ControllerFlags,
  loadControllerConfig,
  parseControllerFlags,
  UsageError,
} from './controller-flags.ts';
import {
  describeStore,
  electorFor,
  type OpenedStore,
  openStore,
  StoreFlagError,
  type StoreFlagValues,
  type StoreSpec,
} from './store-flag.ts';
import { storeOwner } from './store-owner.ts';

/** source.component of Events, the field manager of writes, the default Lease name. */
const COMPONENT = 'metalbox-controller';
const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const SERVICE_ACCOUNT_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** After the manager stopped, families, events and the store get this long to close. */
const CLOSE_TIMEOUT_MS = 10_000;

export async function run(args: string[]): Promise<number> {
  let flags: ControllerFlags;
  let storeValues: StoreFlagValues;
  let spec: StoreSpec;
  let config: Record<string, unknown> = {};
  try {
    const parsed = parseControllerFlags(args);
    if (parsed.help) {
      process.stdout.write(CONTROLLER_USAGE);
      return 0;
    }
    ({ flags, storeValues } = parsed);
    spec = flags.store;
    if (flags.config !== undefined) config = loadControllerConfig(flags.config);
    if (spec.type === 'kube') {
      // Checked here so a missing kubeconfig is a flag problem (exit 2), not a failure at start.
      const kubeconfig = spec.kubeconfig ?? flags.kubeconfig;
      loadKubeConfig(kubeconfig);
      if (kubeconfig !== undefined) spec = { type: 'kube', kubeconfig };
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return usageFailure(error);
  }

  const logger = pino({
    level: flags.logLevel,
    base: { component: COMPONENT },
    timestamp: pino.stdTimeFunctions.isoTime,
    // The runtime logs errors as {type, message} already; never let pino dump an Error's properties
    // (they may hold request inputs) or turn the type into "Object".
    serializers: {
      err: (value: unknown) =>
        value instanceof Error ? { type: value.name, message: value.message } : value,
    },
  });
  const identity = `${hostname()}_${randomBytes(4).toString('hex')}`;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  let opened: OpenedStore;
  let elector: LeaderElector;
  try {
    opened = await openStore(spec, storeValues, { fieldManager: COMPONENT });
  } catch (error) {
    // A companion flag that does not fit the store, or a file it names that cannot be read.
    if (error instanceof StoreFlagError) return usageFailure(error);
    logger.fatal({ store: describeStore(spec), ...errorFields(error) }, 'cannot open the store');
    return 1;
  }
  const store = opened.store;
  try {
    elector = await makeElector(flags, opened, identity, logger);
  } catch (error) {
    logger.fatal({ store: describeStore(spec), ...errorFields(error) }, 'cannot set up leader election');
    await opened.close().catch(() => {});
    return 1;
  }
  const events = new StoreEventRecorder({ store, component: COMPONENT, instance: identity, logger });
  const manager = new Manager({
    store,
    registry,
    elector,
    logger,
    http: flags.metricsAddr,
    namespace: flags.namespace || undefined,
  });

  let families: BuiltFamilies | undefined;
  const closeAll = async () => {
    await withTimeout(
      (async () => {
        await families?.stop();
        await events.flush();
        await opened.close();
      })(),
      CLOSE_TIMEOUT_MS,
    ).catch((error: unknown) => logger.warn(errorFields(error), 'closing did not finish cleanly'));
  };

  try {
    // Read only when Matchbox is synced and the config names no owner.
    const section = config.matchbox as { owner?: unknown } | undefined;
    const owner = section && section.owner === undefined ? await storeOwner(opened) : undefined;
    families = await addControllerFamilies(
      manager,
      { store, events, logger, registry, namespace: flags.namespace, config, ...(owner ? { owner } : {}) },
      {
        workers: flags.concurrency,
        onStopError: (family, error) =>
          logger.warn({ family, ...errorFields(error) }, 'stopping a controller family failed'),
      },
    );
  } catch (error) {
    logger.fatal(errorFields(error), 'cannot build the controllers');
    await closeAll();
    return 1;
  }

  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    signalled = true;
    logger.info({ signal }, 'shutting down: finishing in-flight reconciles');
    void manager.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let exit: ManagerExit | { reason: 'start-failed' };
  try {
    await manager.start();
    const address = manager.address;
    logger.info(
      {
        identity,
        store: describeStore(spec),
        namespace: flags.namespace || '(all)',
        controllers: families.controllers,
        ...(address ? { opsAddress: `${address.address}:${address.port}` } : {}),
      },
      'controller manager started',
    );
    exit = await manager.done;
  } catch (error) {
    logger.fatal(errorFields(error), 'the controller manager failed to start');
    await manager.stop();
    exit = { reason: 'start-failed' };
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  await closeAll();
  const code = exit.reason === 'stopped' ? 0 : 1;
  logger[code === 0 ? 'info' : 'error']({ reason: exit.reason, exitCode: code }, 'exiting');
  // Idle keep-alive sockets of the API client must not hold a stopped (or deposed) replica open.
  setTimeout(() => process.exit(code), 5000).unref();
  return code;
}

function usageFailure(error: Error): number {
  process.stderr.write(`metalbox controller: ${error.message}\n\n${CONTROLLER_USAGE}`);
  return 2;
}

/**
 * --kubeconfig, else $KUBECONFIG, ~/.kube/config, the pod's service account: the order openStore
 * loads them in. Throws UsageError.
 */
function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) {
    if (!existsSync(path)) throw new UsageError(`--kubeconfig: ${path} does not exist`);
    try {
      kc.loadFromFile(path);
    } catch (error) {
      throw new UsageError(`--kubeconfig: cannot load ${path}: ${(error as Error).message.split('\n')[0]}`);
    }
  } else {
    const envFiles = (process.env.KUBECONFIG ?? '').split(':').filter(Boolean);
    const found =
      envFiles.length > 0 ||
      existsSync(join(homedir(), '.kube', 'config')) ||
      existsSync(SERVICE_ACCOUNT_TOKEN_FILE);
    if (!found) {
      throw new UsageError(
        '--kubeconfig: none given, $KUBECONFIG is empty, ~/.kube/config does not exist and this is not a pod',
      );
    }
    try {
      kc.loadFromDefault();
    } catch (error) {
      throw new UsageError(`--kubeconfig: cannot load the default kubeconfig: ${(error as Error).message}`);
    }
  }
  if (!kc.getCurrentCluster()) {
    throw new UsageError('--kubeconfig: the current context names no cluster');
  }
  return kc;
}

/**
 * Without --leader-elect a single leader; with it the store's own election. On the embedded store
 * several processes may open one directory, so a controller without --leader-elect still takes
 * the store's lease, and refuses to start while another controller holds it.
 */
async function makeElector(
  flags: ControllerFlags,
  opened: OpenedStore,
  identity: string,
  logger: Logger,
): Promise<LeaderElector> {
  if (!flags.leaderElect && opened.spec.type === 'file') {
    const elector = await electorFor(opened, { identity, name: flags.leaderElectionId });
    const attempt = (elector as SqliteElector).tryAcquire();
    if (!attempt.acquired) {
      throw new Error(
        `another controller (${attempt.holder || 'unknown'}) runs on ${describeStore(opened.spec)}; ` +
          'stop it, or run every controller with --leader-elect',
      );
    }
    return elector;
  }
  if (!flags.leaderElect) return new AlwaysLeader(identity);
  const namespace =
    opened.spec.type === 'kube'
      ? (flags.leaderElectionNamespace ?? podNamespace() ?? 'metalbox-system')
      : undefined;
  const election = namespace ? `${namespace}/${flags.leaderElectionId}` : flags.leaderElectionId;
  return electorFor(opened, {
    identity,
    name: flags.leaderElectionId,
    ...(namespace ? { namespace } : {}),
    onChange: (leading, detail) => logger.info({ identity, election, leading, detail }, 'leader election'),
  });
}

function podNamespace(): string | undefined {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
