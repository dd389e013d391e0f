// `--store` and its companion flags, shared by every command that opens a store (controller,
// apply, get, describe, delete, watch): one parser, one opener, one elector choice.
//
//   --store kube[:<kubeconfig>]                   a kube-apiserver
//   --store file:<dir>                            the embedded store (SQLite in <dir>; several processes may share it)
//   --store etcd://host:port[,host2:port…][/prefix]  etcd (standalone mode); prefix default /metalbox
//
// Stores without an apiserver get the CRD schemas as validation, and Secrets sealed at rest
// (always in etcd: a key file is required to write Secrets there).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { LeaderElector } from '../runtime/leader.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { crdValidator } from '../stores/crd-validator.ts';
import { Keyring, SecretStore } from '../stores/secrets.ts';
import type { SqliteStore } from '../stores/sqlite.ts';

export type StoreSpec =
  | { type: 'kube'; kubeconfig?: string }
  | { type: 'file'; dir: string }
  | { type: 'etcd'; endpoints: string[]; prefix: string };

/** A bad store flag; the message names the flag. */
export class StoreFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreFlagError';
  }
}

export const STORE_FLAG_SYNTAX =
  'kube[:<kubeconfig>], file:<dir> or etcd://host:port[,host:port...][/prefix]';

/** For parseArgs: the store flags every store-using command accepts. */
export const storeFlagOptions = {
  store: { type: 'string' },
  'encryption-key-file': { type: 'string' },
  'etcd-cacert': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-key': { type: 'string' },
  'etcd-user': { type: 'string' },
  'etcd-password-file': { type: 'string' },
} as const;

export const STORE_FLAGS_HELP = `Store flags:
  --store <store>               ${STORE_FLAG_SYNTAX}
                                (default: $METALBOX_STORE)
  --encryption-key-file <file>  keys that seal Secrets at rest (etcd, file); required to write or
                                read Secrets in etcd. YAML: keys: [{name, secret}], first encrypts
  --etcd-cacert <file>          etcd over TLS: CA bundle of the etcd server certificates
  --etcd-cert, --etcd-key <file>  etcd client certificate and key (client-cert-auth)
  --etcd-user <name>            etcd username; password from --etcd-password-file or
                                $METALBOX_ETCD_PASSWORD (never on the command line)
  Each may come from the environment instead: METALBOX_STORE, METALBOX_ENCRYPTION_KEY_FILE,
  METALBOX_ETCD_CACERT, METALBOX_ETCD_CERT, METALBOX_ETCD_KEY, METALBOX_ETCD_USER,
  METALBOX_ETCD_PASSWORD_FILE (a flag wins over its variable).
`;

/** The values parseArgs produced for storeFlagOptions. */
export interface StoreFlagValues {
  store?: string;
  'encryption-key-file'?: string;
  'etcd-cacert'?: string;
  'etcd-cert'?: string;
  'etcd-key'?: string;
  'etcd-user'?: string;
  'etcd-password-file'?: string;
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

/** Parses a --store value. Throws StoreFlagError. */
export function parseStoreFlag(value: string): StoreSpec {
  if (value === 'kube') return { type: 'kube' };
  if (value.startsWith('kube:') && value.length > 5)
    return { type: 'kube', kubeconfig: resolve(value.slice(5)) };
  if (value.startsWith('file:') && value.length > 5) return { type: 'file', dir: resolve(value.slice(5)) };
  if (value.startsWith('etcd://')) {
    const rest = value.slice('etcd://'.length);
    const slash = rest.indexOf('/');
    const hostList = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? '/metalbox' : rest.slice(slash).replace(/\/+$/, '');
    const endpoints: string[] = [];
    for (const host of hostList.split(',')) {
      const m = HOST_PORT.exec(host);
      if (!m || (m[1] !== undefined && Number(m[1]) > 65_535)) {
        throw new StoreFlagError(`--store: "${host}" in ${value} is not host or host:port`);
      }
      endpoints.push(m[1] === undefined ? `${host}:2379` : host);
    }
    if (prefix === '' || !/^(\/[A-Za-z0-9._-]+)+$/.test(prefix)) {
      throw new StoreFlagError(
        `--store: key prefix "${prefix}" must be like /metalbox (letters, digits, . _ -)`,
      );
    }
    return { type: 'etcd', endpoints, prefix };
  }
  throw new StoreFlagError(`--store must be ${STORE_FLAG_SYNTAX}, not "${value}"`);
}

/** The --store value, or $METALBOX_STORE; throws StoreFlagError when neither is set. */
export function storeSpecFrom(values: StoreFlagValues, env: NodeJS.ProcessEnv = process.env): StoreSpec {
  const value = values.store ?? env.METALBOX_STORE;
  if (!value) throw new StoreFlagError(`--store is required (${STORE_FLAG_SYNTAX}), or set $METALBOX_STORE`);
  return parseStoreFlag(value);
}

/** Where a store is, for logs and messages: never credentials. */
export function describeStore(spec: StoreSpec): string {
  switch (spec.type) {
    case 'kube':
      return spec.kubeconfig ? `kube:${spec.kubeconfig}` : 'kube';
    case 'file':
      return `file:${spec.dir}`;
    case 'etcd':
      return `etcd://${spec.endpoints.join(',')}${spec.prefix}`;
  }
}

/** Flags an operator can set once in the environment (e.g. /etc/default/metalbox). */
const ENV_FALLBACK = {
  'etcd-cacert': 'METALBOX_ETCD_CACERT',
  'etcd-cert': 'METALBOX_ETCD_CERT',
  'etcd-key': 'METALBOX_ETCD_KEY',
  'etcd-password-file': 'METALBOX_ETCD_PASSWORD_FILE',
} as const;

export interface OpenedStore {
  store: ResourceStore;
  spec: StoreSpec;
  /** etcd: the client, so an EtcdElector shares the store's connection. */
  etcdClient?: Etcd3;
  /** file: the store itself, whose lease table a SqliteElector uses. */
  sqlite?: SqliteStore;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Kube store: field manager of writes (default metalbox). */
  fieldManager?: string;
  env?: NodeJS.ProcessEnv;
}

/** Opens the store a StoreSpec names, with validation and Secret sealing as described above. */
export async function openStore(
  spec: StoreSpec,
  values: StoreFlagValues = {},
  options: OpenStoreOptions = {},
): Promise<OpenedStore> {
  const env = options.env ?? process.env;
  const etcdOnly = (
    ['etcd-cacert', 'etcd-cert', 'etcd-key', 'etcd-user', 'etcd-password-file'] as const
  ).filter((f) => values[f] !== undefined);
  if (spec.type !== 'etcd' && etcdOnly.length > 0) {
    throw new StoreFlagError(`--${etcdOnly[0]} applies only to --store etcd://...`);
  }
  if (spec.type === 'kube' && values['encryption-key-file'] !== undefined) {
    throw new StoreFlagError(
      '--encryption-key-file does not apply to --store kube (the apiserver encrypts Secrets)',
    );
  }
  const keyFile =
    values['encryption-key-file'] ?? (spec.type === 'kube' ? undefined : env.METALBOX_ENCRYPTION_KEY_FILE);
  const keyring = keyFile === undefined ? undefined : await Keyring.fromFile(keyFile);
  switch (spec.type) {
    case 'kube': {
      const [{ KubeConfig }, { KubeStore }] = await Promise.all([
        import('@kubernetes/client-node'),
        import('../stores/kube.ts'),
      ]);
      const kubeConfig = new KubeConfig();
      if (spec.kubeconfig) kubeConfig.loadFromFile(spec.kubeconfig);
      else kubeConfig.loadFromDefault();
      const store = new KubeStore({ kubeConfig, fieldManager: options.fieldManager ?? 'metalbox' });
      return { store, spec, close: () => store.close() };
    }
    case 'file': {
      const { SqliteStore } = await import('../stores/sqlite.ts');
      const inner = await SqliteStore.open(spec.dir, { validator: crdValidator });
      const store = new SecretStore(inner, keyring ? { keyring } : {});
      return { store, spec, sqlite: inner, close: () => store.close() };
    }
    case 'etcd': {
      const { EtcdStore } = await import('../stores/etcd.ts');
      const read = (flag: 'etcd-cacert' | 'etcd-cert' | 'etcd-key' | 'etcd-password-file') => {
        const path = values[flag] ?? env[ENV_FALLBACK[flag]];
        if (path === undefined) return undefined;
        try {
          return readFileSync(path);
        } catch (error) {
          throw new StoreFlagError(
            `--${flag}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
          );
        }
      };
      const ca = read('etcd-cacert');
      const cert = read('etcd-cert');
      const key = read('etcd-key');
      if ((cert === undefined) !== (key === undefined)) {
        throw new StoreFlagError('--etcd-cert and --etcd-key go together');
      }
      if (cert && !ca) throw new StoreFlagError('--etcd-cert needs --etcd-cacert (TLS)');
      const user = values['etcd-user'] ?? env.METALBOX_ETCD_USER;
      const password =
        read('etcd-password-file')
          ?.toString('utf8')
          .replace(/\r?\n$/, '') ?? env.METALBOX_ETCD_PASSWORD;
      if (user !== undefined && password === undefined) {
        throw new StoreFlagError('--etcd-user needs --etcd-password-file or $METALBOX_ETCD_PASSWORD');
      }
      const inner = new EtcdStore({
        hosts: spec.endpoints,
        prefix: spec.prefix,
        validator: crdValidator,
        ...(ca ? { tls: { ca, ...(cert ? { cert } : {}), ...(key ? { key } : {}) } } : {}),
        ...(user !== undefined ? { auth: { username: user, password: password! } } : {}),
      });
      const store = new SecretStore(inner, { ...(keyring ? { keyring } : {}), requireEncryption: true });
      return { store, spec, etcdClient: inner.client, close: () => store.close() };
    }
  }
}

export interface ElectorOptions {
  identity: string;
  /** Election (etcd) or Lease (kube) name; default metalbox-controller. */
  name?: string;
  /** Kube: namespace of the Lease (default metalbox-system). */
  namespace?: string;
  onChange?: (leading: boolean, detail: string) => void;
}

/**
 * The elector that fits the store: an etcd election on the store's own connection (same key
 * prefix), a Lease for kube, and a lease row in the embedded store's database for file:<dir>.
 */
export async function electorFor(opened: OpenedStore, options: ElectorOptions): Promise<LeaderElector> {
  const name = options.name ?? 'metalbox-controller';
  switch (opened.spec.type) {
    case 'etcd': {
      const { EtcdElector } = await import('../stores/etcd-leader.ts');
      return new EtcdElector({
        client: opened.etcdClient!,
        prefix: opened.spec.prefix,
        name,
        identity: options.identity,
        ...(options.onChange ? { onChange: options.onChange } : {}),
      });
    }
    case 'kube': {
      const [{ KubeConfig }, { LeaseElector }] = await Promise.all([
        import('@kubernetes/client-node'),
        import('../stores/kube-leader.ts'),
      ]);
      const kubeConfig = new KubeConfig();
      if (opened.spec.kubeconfig) kubeConfig.loadFromFile(opened.spec.kubeconfig);
      else kubeConfig.loadFromDefault();
      return new LeaseElector({
        kubeConfig,
        namespace: options.namespace ?? 'metalbox-system',
        name,
        identity: options.identity,
        ...(options.onChange ? { onChange: options.onChange } : {}),
      });
    }
    case 'file': {
      const { SqliteElector } = await import('../stores/sqlite-leader.ts');
      return new SqliteElector({
        store: opened.sqlite!,
        name,
        identity: options.identity,
        ...(options.onChange ? { onChange: options.onChange } : {}),
      });
    }
  }
}
