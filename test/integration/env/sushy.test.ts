import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type SushyPeer, startSushy } from '../../env/sushy.ts';
import { waitFor } from '../../env/wait.ts';

let sushy: SushyPeer;
before(async () => {
  sushy = await startSushy({
    systems: [
      { name: 'cp-01', macs: ['aa:bb:cc:dd:ee:01'] },
      { name: 'cp-02', macs: ['aa:bb:cc:dd:ee:02'] },
    ],
  });
});
after(async () => {
  await sushy?.destroy();
});

test('sushy lists its fake systems behind basic auth', async () => {
  const systems = await sushy.get('/redfish/v1/Systems');
  assert.equal((systems.Members as unknown[]).length, 2);
  const anonymous = await fetch(`${sushy.url}/redfish/v1/Systems`);
  assert.equal(anonymous.status, 401);
});

test('a power action is reflected in PowerState', async () => {
  const system = sushy.systems[0]!;
  const res = await fetch(`${sushy.url}/redfish/v1/Systems/${system.uuid}/Actions/ComputerSystem.Reset`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${sushy.username}:${sushy.password}`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ ResetType: 'On' }),
  });
  assert.ok(res.status === 204 || res.status === 200, `reset answered ${res.status}`);
  // The fake driver applies power changes 1-11 s later, like real hardware.
  await waitFor(async () => (await sushy.get(`/redfish/v1/Systems/${system.uuid}`)).PowerState === 'On', {
    what: 'PowerState On',
    timeoutMs: 20_000,
    intervalMs: 500,
  });
});
