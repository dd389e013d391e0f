// The etcd store over TLS with a client certificate, and with etcd's username/password auth, as a
// hardened standalone installation runs it; the CLI reaches the same etcd through its flags.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { main as get } from '../../../src/cli/get.ts';
import type { Resource } from '../../../src/runtime/resource.ts';
import { EtcdStore } from '../../../src/stores/etcd.ts';
import { EtcdAccessError } from '../../../src/stores/etcd-client.ts';
import { Widget } from '../../conformance/kinds.ts';
import { type EtcdPeer, startEtcd } from '../../env/etcd.ts';

let etcd: EtcdPeer;
let tls: { ca: Buffer; cert: Buffer; key: Buffer };
const PASSWORD = 'etcd-root-password-for-tests';
const scratch = mkdtempSync(join(tmpdir(), 'metalbox-etcd-tls-'));
const stores: EtcdStore[] = [];
before(async () => {
  etcd = await startEtcd({ name: 'etcd-tls', tls: true });
  tls = {
    ca: Buffer.from(etcd.tls!.ca.cert),
    cert: Buffer.from(etcd.tls!.client.cert),
    key: Buffer.from(etcd.tls!.client.key),
  };
});
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await etcd?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function open(options: Partial<ConstructorParameters<typeof EtcdStore>[0]> = {}): EtcdStore {
  const s = new EtcdStore({
    hosts: [etcd.endpoint],
    prefix: '/tls-test',
    requestTimeoutMs: 3000,
    ...options,
  });
  stores.push(s);
  return s;
}

const widget = (name: string): Resource => ({
  apiVersion: `${Widget.group}/${Widget.version}`,
  kind: Widget.kind,
  metadata: { namespace: 'default', name },
  spec: { size: 1 },
});

test('over TLS with a client certificate the store works; without the certificate etcd refuses', async () => {
  const s = open({ tls });
  const created = await s.create(Widget, widget('over-tls'));
  assert.equal(
    (await s.get(Widget, { namespace: 'default', name: 'over-tls' })).metadata.uid,
    created.metadata.uid,
  );
  const anonymous = open({ tls: { ca: tls.ca } });
  await assert.rejects(anonymous.get(Widget, { namespace: 'default', name: 'over-tls' }));
  const plaintext = open();
  await assert.rejects(plaintext.get(Widget, { namespace: 'default', name: 'over-tls' }));
});

test('with etcd auth on, the right password works and a wrong one is an access error', async () => {
  const admin = new Etcd3({
    hosts: etcd.endpoint,
    credentials: { rootCertificate: tls.ca, certChain: tls.cert, privateKey: tls.key },
  });
  try {
    await admin.user('root').create(PASSWORD);
    await admin.user('root').addRole('root');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
  const s = open({ tls, auth: { username: 'root', password: PASSWORD } });
  await s.create(Widget, widget('with-auth'));
  assert.equal((await s.list(Widget, { namespace: 'default' })).items.length, 2);
  const wrong = open({ tls, auth: { username: 'root', password: 'not-the-password' } });
  const err = await wrong.get(Widget, { namespace: 'default', name: 'with-auth' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof EtcdAccessError, `expected EtcdAccessError, got ${String(err)}`);
  assert.match(err.message, /etcd refused access: .*authentication failed/);
  assert.ok(!err.message.includes('not-the-password'));

  // The CLI: TLS files and user by flag, the password from the environment only.
  const files = Object.fromEntries(
    (['ca', 'cert', 'key'] as const).map((k) => {
      const path = join(scratch, `${k}.pem`);
      writeFileSync(path, tls[k]);
      return [k, path];
    }),
  );
  const run = async (env: NodeJS.ProcessEnv) => {
    let errText = '';
    const code = await get(
      [
        'bmh',
        '--store',
        `etcd://${etcd.endpoint}/tls-test`,
        '--etcd-cacert',
        files.ca!,
        '--etcd-cert',
        files.cert!,
        '--etcd-key',
        files.key!,
        '--etcd-user',
        'root',
      ],
      {
        out: () => {},
        err: (t) => {
          errText += t;
        },
        env,
        now: () => new Date(),
      },
    );
    return { code, errText };
  };
  const ok = await run({ METALBOX_ETCD_PASSWORD: PASSWORD });
  assert.equal(ok.code, 0, ok.errText);
  assert.equal(ok.errText, 'No resources found in default namespace.\n');
  const noPassword = await run({});
  assert.equal(noPassword.code, 2);
  assert.match(noPassword.errText, /--etcd-user needs --etcd-password-file or \$METALBOX_ETCD_PASSWORD/);
});
