import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type IpmiSimPeer, runIpmitool, startIpmiSim } from '../../env/ipmisim.ts';

let bmcs: IpmiSimPeer[];
before(async () => {
  bmcs = await Promise.all([startIpmiSim({ name: 'ipmi-a' }), startIpmiSim({ name: 'ipmi-b' })]);
});
after(async () => {
  await Promise.all((bmcs ?? []).map((b) => b.destroy()));
});

test('ipmitool lanplus power on is reflected in the simulator', async () => {
  const [a, b] = bmcs as [IpmiSimPeer, IpmiSimPeer];
  const on = await runIpmitool(a, ['chassis', 'power', 'on']);
  assert.equal(on.code, 0, on.stderr);
  assert.equal(a.state().power, 'on');
  assert.equal(b.state().power, 'off', 'the other simulator is independent');
  const status = await runIpmitool(a, ['chassis', 'power', 'status']);
  assert.match(status.stdout, /Chassis Power is on/);
});

test('ipmitool bootdev pxe is reflected in the simulator', async () => {
  const b = bmcs[1]!;
  const res = await runIpmitool(b, ['chassis', 'bootdev', 'pxe', 'options=efiboot']);
  assert.match(res.stdout, /Set Boot Device to pxe/);
  assert.equal(b.state().bootDevice, 'pxe');
});

test('a wrong password cannot open a session', async () => {
  const a = bmcs[0]!;
  const res = await runIpmitool({ ...a, password: 'wrong-password' }, ['chassis', 'power', 'status']);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /Unable to establish IPMI v2/);
});
