// The typed Matchbox client against two real Matchbox servers (the mgmt-01/02 pair).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { MatchboxClient } from '../../../src/matchbox/client.ts';
import {
  MatchboxConfigError,
  MatchboxInvalidError,
  MatchboxNotFoundError,
  MatchboxUnreachableError,
} from '../../../src/matchbox/errors.ts';
import type { Group, Profile } from '../../../src/matchbox/objects.ts';
import { type MatchboxPeer, startMatchboxPair } from '../../env/matchbox.ts';

let pair: Awaited<ReturnType<typeof startMatchboxPair>>;
const clients = new Map<MatchboxPeer, MatchboxClient>();

before(async () => {
  pair = await startMatchboxPair();
  for (const peer of [pair.a, pair.b]) {
    clients.set(
      peer,
      new MatchboxClient({
        endpoint: peer.rpcEndpoint,
        tls: { ca: pair.pki.ca.cert, cert: pair.pki.client.cert, key: pair.pki.client.key },
        timeoutMs: 5_000,
      }),
    );
  }
});
after(async () => {
  for (const client of clients.values()) client.close();
  await pair?.destroy();
});

const controlPlane: Profile = {
  id: 'metal.control-plane',
  name: 'Talos Linux - Control Plane',
  boot: {
    kernel: '/assets/vmlinuz',
    initrd: ['/assets/initramfs.xz'],
    args: [
      'initrd=initramfs.xz',
      'talos.platform=metal',
      'talos.config=http://10.0.20.5:8080/assets/controlplane.yaml',
    ],
  },
};

test('profiles round-trip through put, get, list and delete on both servers', async () => {
  for (const peer of [pair.a, pair.b]) {
    const client = clients.get(peer)!;
    await client.profilePut(controlPlane);
    assert.deepEqual(await client.profileGet(controlPlane.id), controlPlane);
    assert.deepEqual(await client.profileList(), [controlPlane]);
    // An in-place update replaces the object.
    const updated = { ...controlPlane, boot: { ...controlPlane.boot!, args: ['talos.platform=metal'] } };
    await client.profilePut(updated);
    assert.deepEqual(await client.profileGet(controlPlane.id), updated);
    await client.profileDelete(controlPlane.id);
    assert.deepEqual(await client.profileList(), []);
  }
});

test('groups round-trip with metadata as an object and the MAC selector normalised', async () => {
  for (const peer of [pair.a, pair.b]) {
    const client = clients.get(peer)!;
    await client.profilePut(controlPlane);
    const group: Group = {
      id: 'metal.cp-01',
      name: 'Control Plane Node 1',
      profile: controlPlane.id,
      selector: { mac: 'AA-BB-CC-DD-EE-01' },
      metadata: { hostname: 'cp-01', vlan: 20, nested: { ok: true } },
    };
    await client.groupPut(group);
    const expected = { ...group, selector: { mac: 'aa:bb:cc:dd:ee:01' } };
    assert.deepEqual(await client.groupGet(group.id), expected);
    assert.deepEqual(await client.groupList(), [expected]);
    // The file Matchbox wrote carries the normalised MAC, so its HTTP matching works.
    const onDisk = JSON.parse(readFileSync(join(peer.dataPath, 'groups', `${group.id}.json`), 'utf8'));
    assert.deepEqual(onDisk.selector, { mac: 'aa:bb:cc:dd:ee:01' });
    assert.deepEqual(await client.selectProfile({ mac: 'AA:BB:CC:DD:EE:01' }), controlPlane);
    await client.groupDelete(group.id);
    assert.deepEqual(await client.groupList(), []);
    await client.profileDelete(controlPlane.id);
  }
});

test('deleting an object that is not there is success', async () => {
  const client = clients.get(pair.a)!;
  await client.profileDelete('metal.never-written');
  await client.groupDelete('metal.never-written');
  await client.genericDelete('metal.never-written');
});

test("getting an object that is not there is NotFound, without Matchbox's server path", async () => {
  const client = clients.get(pair.a)!;
  await assert.rejects(client.profileGet('metal.absent'), (error: unknown) => {
    assert.ok(error instanceof MatchboxNotFoundError);
    assert.equal(error.message, `profile "metal.absent" not found on Matchbox at ${pair.a.rpcEndpoint}`);
    return true;
  });
  await assert.rejects(client.groupGet('metal.absent'), MatchboxNotFoundError);
  await assert.rejects(client.selectProfile({ mac: 'aa:bb:cc:dd:ee:99' }), (error: unknown) => {
    assert.ok(error instanceof MatchboxNotFoundError);
    assert.equal(
      error.message,
      `no group on Matchbox at ${pair.a.rpcEndpoint} matches mac=aa:bb:cc:dd:ee:99`,
    );
    return true;
  });
});

test("an object Matchbox refuses is Invalid, carrying Matchbox's validation message", async () => {
  const client = clients.get(pair.a)!;
  await assert.rejects(
    client.groupPut({ id: 'metal.no-profile', profile: '', selector: {}, metadata: {} }),
    (error: unknown) => {
      assert.ok(error instanceof MatchboxInvalidError);
      assert.equal(
        error.message,
        `Matchbox at ${pair.a.rpcEndpoint} refused group "metal.no-profile": Group requires a Profile`,
      );
      return true;
    },
  );
  await assert.rejects(client.profilePut({ id: '' }), /refused profile "": Id is required/);
  await assert.rejects(
    client.groupPut({ id: 'metal.bad-mac', profile: 'p', selector: { mac: 'not-a-mac' }, metadata: {} }),
    (error: unknown) =>
      error instanceof MatchboxConfigError &&
      /selector\.mac: "not-a-mac" is not a MAC address/.test(error.message),
  );
});

test('generic templates round-trip as bytes', async () => {
  const client = clients.get(pair.b)!;
  const template = 'machine:\n  network:\n    hostname: {{.hostname}}\n';
  await client.genericPut('metal.control-plane', template);
  assert.equal((await client.genericGet('metal.control-plane')).toString('utf8'), template);
  assert.equal(readFileSync(join(pair.b.dataPath, 'generic', 'metal.control-plane'), 'utf8'), template);
  await client.genericDelete('metal.control-plane');
  await assert.rejects(client.genericGet('metal.control-plane'), MatchboxNotFoundError);
});

test('a restarted server is used again without a new client', async () => {
  const client = clients.get(pair.b)!;
  await pair.b.stop();
  await assert.rejects(client.profileList(), MatchboxUnreachableError);
  await pair.b.start({ wipeData: true });
  const started = Date.now();
  let listed: Profile[] | undefined;
  while (!listed && Date.now() - started < 30_000) {
    listed = await client.profileList().catch(() => undefined);
    if (!listed) await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(listed, []);
  await client.profilePut(controlPlane);
  assert.deepEqual(await client.profileGet(controlPlane.id), controlPlane);
});

test('a server that hung and recovered is used again by the same client after the timeout', async () => {
  const client = new MatchboxClient({
    endpoint: pair.a.rpcEndpoint,
    tls: { ca: pair.pki.ca.cert, cert: pair.pki.client.cert, key: pair.pki.client.key },
    timeoutMs: 1_000,
  });
  try {
    await client.profileList();
    process.kill(pair.a.process().pid, 'SIGSTOP');
    try {
      await assert.rejects(client.profileList(), (error: unknown) => {
        assert.ok(error instanceof MatchboxUnreachableError);
        assert.equal(error.failure, 'timeout');
        return true;
      });
    } finally {
      process.kill(pair.a.process().pid, 'SIGCONT');
    }
    assert.ok(Array.isArray(await client.profileList()));
  } finally {
    client.close();
  }
});

test('endpoints must be host:port without a scheme', () => {
  const tls = { ca: pair.pki.ca.cert, cert: pair.pki.client.cert, key: pair.pki.client.key };
  assert.throws(
    () => new MatchboxClient({ endpoint: 'https://matchbox.example.com:8081', tls }),
    /endpoint "https:\/\/matchbox.example.com:8081" must be host:port without a scheme/,
  );
  assert.throws(
    () => new MatchboxClient({ endpoint: 'matchbox.example.com', tls }),
    /"matchbox.example.com" has no port/,
  );
  assert.throws(() => new MatchboxClient({ endpoint: 'matchbox:99999', tls }), /port outside 1-65535/);
  const v6 = new MatchboxClient({ endpoint: '[fd00::5]:8081', tls });
  assert.equal(v6.host, 'fd00::5');
  v6.close();
});
