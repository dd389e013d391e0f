import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Client, credentials, type ServiceError } from '@grpc/grpc-js';
import { matchboxServices } from '../../../src/matchbox/proto/load.ts';
import { type MatchboxPeer, startMatchboxPair } from '../../env/matchbox.ts';

let pair: Awaited<ReturnType<typeof startMatchboxPair>>;
before(async () => {
  pair = await startMatchboxPair();
});
after(async () => {
  await pair?.destroy();
});

function profiles(peer: MatchboxPeer, withClientCert: boolean): Client {
  const { ca, client } = peer.pki;
  const creds = withClientCert
    ? credentials.createSsl(Buffer.from(ca.cert), Buffer.from(client.key), Buffer.from(client.cert))
    : credentials.createSsl(Buffer.from(ca.cert));
  return new (matchboxServices().Profiles)(peer.rpcEndpoint, creds);
}

function call<T>(client: Client, method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!.bind(client);
    fn(request, { deadline: Date.now() + 5000 }, (error: ServiceError | null, response: T) =>
      error ? reject(error) : resolve(response),
    );
  });
}

test('two Matchbox servers answer ProfileList over mTLS', async () => {
  for (const peer of [pair.a, pair.b]) {
    const client = profiles(peer, true);
    await call(client, 'ProfilePut', {
      profile: { id: `smoke-${peer.name}`, boot: { kernel: '/assets/k' } },
    });
    const listed = await call<{ profiles: { id: string }[] }>(client, 'ProfileList', {});
    assert.deepEqual(
      listed.profiles.map((p) => p.id),
      [`smoke-${peer.name}`],
    );
    client.close();
  }
});

test('a call without a client certificate is rejected', async () => {
  const client = profiles(pair.a, false);
  await assert.rejects(call(client, 'ProfileList', {}), (error: ServiceError) => {
    assert.equal(error.code, 14 /* UNAVAILABLE: the handshake fails */);
    return true;
  });
  client.close();
});

test('the HTTP boot API renders a profile for a MAC', async () => {
  const client = profiles(pair.a, true);
  await call(client, 'ProfilePut', {
    profile: {
      id: 'talos',
      boot: { kernel: '/assets/vmlinuz', initrd: ['/assets/initramfs.xz'], args: ['talos.platform=metal'] },
    },
  });
  const groups = new (matchboxServices().Groups)(
    pair.a.rpcEndpoint,
    credentials.createSsl(
      Buffer.from(pair.pki.ca.cert),
      Buffer.from(pair.pki.client.key),
      Buffer.from(pair.pki.client.cert),
    ),
  );
  await call(groups, 'GroupPut', {
    group: { id: 'cp-01', profile: 'talos', selector: { mac: 'aa:bb:cc:dd:ee:01' } },
  });
  const res = await fetch(`${pair.a.httpURL}/ipxe?mac=aa-bb-cc-dd-ee-01`);
  assert.equal(res.status, 200);
  assert.equal(
    await res.text(),
    '#!ipxe\nkernel /assets/vmlinuz talos.platform=metal\ninitrd /assets/initramfs.xz\nboot\n',
  );
  client.close();
  groups.close();
});
