// The default owner identity of a metalbox instance (src/matchbox/owner.ts), derived from its
// store, so that two stores never share one and every process on one store agrees on it:
//   kube: the cluster (the uid of the kube-system namespace, the usual cluster id);
//   etcd: the etcd cluster id and the key prefix (several metalbox stores may share one etcd);
//   file: a random id written once into the store directory.
// Only a digest is shown (Matchbox names are readable by every Matchbox client).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResourceKind } from '../runtime/resource.ts';
import type { OpenedStore } from './store-flag.ts';

const NamespaceKind: ResourceKind = {
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
};

/** The file in a file store's directory that holds its owner identity. */
export const OWNER_FILE = 'matchbox-owner';

const digest = (...parts: string[]) =>
  createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 12);

/** A store whose identity cannot be read; the message says what to configure instead. */
export class StoreOwnerError extends Error {
  constructor(message: string) {
    super(`${message}; set matchbox.owner in the config to name this instance explicitly`);
    this.name = 'StoreOwnerError';
  }
}

export async function storeOwner(opened: OpenedStore): Promise<string> {
  const { spec } = opened;
  switch (spec.type) {
    case 'kube': {
      let uid: string | undefined;
      try {
        uid = (await opened.store.get(NamespaceKind, { name: 'kube-system' })).metadata.uid;
      } catch (error) {
        throw new StoreOwnerError(
          `cannot read the cluster id (namespace kube-system): ${(error as Error).message}`,
        );
      }
      if (!uid) throw new StoreOwnerError('namespace kube-system has no uid');
      return `kube-${digest(uid)}`;
    }
    case 'etcd': {
      const client = opened.etcdClient;
      if (!client) throw new StoreOwnerError('no etcd client');
      let clusterId: string;
      try {
        clusterId = (await client.maintenance.status()).header.cluster_id;
      } catch (error) {
        throw new StoreOwnerError(`cannot read the etcd cluster id: ${(error as Error).message}`);
      }
      return `etcd-${digest(clusterId, spec.prefix)}`;
    }
    case 'file':
      return fileOwner(spec.dir);
  }
}

/** The id in `<dir>/matchbox-owner`, created on first use (exclusively, so concurrent first runs agree). */
function fileOwner(dir: string): string {
  const path = join(dir, OWNER_FILE);
  const read = () => readFileSync(path, 'utf8').trim();
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    writeFileSync(path, `file-${randomBytes(6).toString('hex')}\n`, { flag: 'wx', mode: 0o644 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return read();
}
