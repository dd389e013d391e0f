// A real kube-apiserver (built from the Go module proxy by scripts/setup) on etcd, started the way
// envtest does: static token auth, RBAC, a serving cert from a throw-away CA, /readyz polled.
// No controller-manager runs, so there is no garbage collection and namespaces never finish deleting.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, fetch as undiciFetch } from 'undici';
import { type EtcdPeer, startEtcd } from './etcd.ts';
import { peerBinary, scratchDir } from './peers.ts';
import { createCA } from './pki.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './process.ts';
import { waitFor } from './wait.ts';

/** Identities with static tokens. `controller` is metalbox's ServiceAccount identity for RBAC tests. */
export type KubeUser = 'admin' | 'restricted' | 'controller';

export const CONTROLLER_NAMESPACE = 'metalbox-system';
export const CONTROLLER_SERVICE_ACCOUNT = 'metalbox-controller';

export interface KubeApiserverPeer {
  /** https://127.0.0.1:<port> */
  url: string;
  /** PEM of the CA that signed the serving cert. */
  caData: string;
  tokens: Record<KubeUser, string>;
  etcd: EtcdPeer;
  process(): ManagedProcess;
  kubeConfig(user?: KubeUser): KubeConfig;
  /** Writes a kubeconfig file (for kubectl) and returns its path. */
  kubeconfigFile(user?: KubeUser): string;
  /** Raw authenticated request against the apiserver (JSON in and out). */
  request(
    method: string,
    path: string,
    body?: unknown,
    user?: KubeUser,
  ): Promise<{ status: number; body: unknown }>;
  /** Creates or replaces CRDs and waits until discovery lists every served plural (as envtest does). */
  installCRDs(crds: CrdLike[]): Promise<void>;
  /** Stops and starts the apiserver on the same port and etcd (for watch-interruption tests). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface CrdLike {
  metadata: { name: string; [field: string]: unknown };
  spec: {
    group: string;
    names: { plural: string; [field: string]: unknown };
    versions: { name: string; served: boolean; [field: string]: unknown }[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

export async function startKubeApiserver(opts: { etcd?: EtcdPeer } = {}): Promise<KubeApiserverPeer> {
  const ownEtcd = opts.etcd === undefined;
  const etcd = opts.etcd ?? (await startEtcd({ name: 'kube-etcd' }));
  const scratch = scratchDir('kube-apiserver');
  const dir = scratch.dir;
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;

  const ca = createCA(dir, 'metalbox-kube-ca');
  const serving = ca.issue({
    name: 'apiserver',
    commonName: 'kube-apiserver',
    usage: 'server',
    subjectAltNames: ['IP:127.0.0.1', 'DNS:localhost'],
  });
  // One key signs and verifies service-account tokens, as Kubernetes' hack/ scripts do.
  const saSigner = ca.issue({ name: 'sa-signer', commonName: 'sa-signer', usage: 'client' });

  const tokens: Record<KubeUser, string> = {
    admin: randomBytes(16).toString('hex'),
    restricted: randomBytes(16).toString('hex'),
    controller: randomBytes(16).toString('hex'),
  };
  const sa = `system:serviceaccount:${CONTROLLER_NAMESPACE}:${CONTROLLER_SERVICE_ACCOUNT}`;
  const tokenFile = join(dir, 'tokens.csv');
  writeFileSync(
    tokenFile,
    [
      `${tokens.admin},admin,admin-uid,"system:masters"`,
      `${tokens.restricted},restricted,restricted-uid`,
      `${tokens.controller},${sa},controller-uid,"system:serviceaccounts,system:serviceaccounts:${CONTROLLER_NAMESPACE}"`,
    ].join('\n') + '\n',
  );

  const args = [
    `--etcd-servers=${etcd.clientURL}`,
    `--etcd-prefix=/registry-${randomBytes(4).toString('hex')}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${serving.certFile}`,
    `--tls-private-key-file=${serving.keyFile}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    '--disable-admission-plugins=ServiceAccount',
    '--authorization-mode=RBAC',
    `--token-auth-file=${tokenFile}`,
    `--service-account-issuer=${url}/`,
    `--service-account-key-file=${saSigner.keyFile}`,
    `--service-account-signing-key-file=${saSigner.keyFile}`,
    // Watches read etcd directly, so a forced etcd compaction yields 410 Gone as in production after a
    // long disconnect (the watch cache would answer from its own window instead).
    '--watch-cache=false',
    '--v=1',
  ];
  const agent = new Agent({ connect: { ca: ca.cert } });
  let proc = startKubeProcess(args, dir);

  const request: KubeApiserverPeer['request'] = async (method, path, body, user = 'admin') => {
    const res = await undiciFetch(`${url}${path}`, {
      method,
      dispatcher: agent,
      headers: {
        authorization: `Bearer ${tokens[user]}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (e.g. /readyz answers "ok")
    }
    return { status: res.status, body: parsed };
  };

  const waitReady = async () => {
    await waitFor(async () => (await request('GET', '/readyz')).status === 200, {
      what: 'kube-apiserver /readyz',
      timeoutMs: 90_000,
      intervalMs: 200,
      context: () => proc.tail(),
      abortIf: () => (proc.isRunning() ? undefined : 'kube-apiserver exited'),
    });
    await waitFor(async () => (await request('GET', '/api/v1/namespaces/default')).status === 200, {
      what: 'the default namespace',
      timeoutMs: 30_000,
      context: () => proc.tail(),
    });
  };

  const stop = async () => {
    await proc.stop(10_000);
    await agent.close();
    if (ownEtcd) await etcd.stop();
    scratch.remove();
  };
  try {
    await waitReady();
  } catch (error) {
    await stop();
    throw error;
  }

  const kubeConfig = (user: KubeUser = 'admin') => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'test', server: url, caData: Buffer.from(ca.cert).toString('base64'), skipTLSVerify: false },
      ],
      users: [{ name: user, token: tokens[user] }],
      contexts: [{ name: user, cluster: 'test', user }],
      currentContext: user,
    });
    return kc;
  };

  return {
    url,
    caData: ca.cert,
    tokens,
    etcd,
    process: () => proc,
    kubeConfig,
    kubeconfigFile(user = 'admin') {
      const file = join(dir, `kubeconfig-${user}.yaml`);
      writeFileSync(file, kubeConfig(user).exportConfig());
      return file;
    },
    request,
    async installCRDs(crds) {
      for (const crd of crds) {
        const path = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
        const existing = await request('GET', `${path}/${crd.metadata.name}`);
        const res =
          existing.status === 404
            ? await request('POST', path, crd)
            : await request('PUT', `${path}/${crd.metadata.name}`, {
                ...crd,
                metadata: {
                  ...crd.metadata,
                  resourceVersion: (existing.body as { metadata: { resourceVersion: string } }).metadata
                    .resourceVersion,
                },
              });
        if (res.status >= 300) {
          throw new Error(
            `installing CRD ${crd.metadata.name}: HTTP ${res.status} ${JSON.stringify(res.body)}`,
          );
        }
      }
      for (const crd of crds) {
        for (const version of crd.spec.versions.filter((v) => v.served)) {
          await waitFor(
            async () => {
              const res = await request('GET', `/apis/${crd.spec.group}/${version.name}`);
              const resources = (res.body as { resources?: { name: string }[] }).resources ?? [];
              return res.status === 200 && resources.some((r) => r.name === crd.spec.names.plural);
            },
            {
              what: `discovery to list ${crd.spec.names.plural}.${crd.spec.group}/${version.name}`,
              timeoutMs: 10_000,
            },
          );
        }
      }
    },
    async restart() {
      await proc.stop(10_000);
      proc = startKubeProcess(args, dir);
      await waitReady();
    },
    stop,
  };
}

function startKubeProcess(args: string[], dir: string): ManagedProcess {
  return startProcess({ name: 'kube-apiserver', command: peerBinary('kubeApiserver'), args, logDir: dir });
}
