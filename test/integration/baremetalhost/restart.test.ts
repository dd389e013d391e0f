// Crash safety: a real `metalbox controller` process (kube store) is SIGKILLed each time the host
// is seen in a new state or step, and started again; the host still converges to provisioned with
// one install and one power action, as the simulated machine and sushy-tools record them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { scratchDir } from '../../env/peers.ts';
import type { ManagedProcess } from '../../env/process.ts';
import { type Host, World } from './world.ts';

const scratch = scratchDir('bmh-restart');
let world: World;
let controller: ManagedProcess | undefined;
let starts = 0;

before(async () => {
  world = await World.start({ backend: 'kube', systems: 1 });
});
after(async () => {
  await controller?.kill();
  await world?.close();
  scratch.remove();
});

function startController(): ManagedProcess {
  starts++;
  return world.spawnController(scratch.dir, `controller-${starts}`, ['--metrics-addr', '127.0.0.1:0']);
}

/** Where the host is, finely enough to kill the controller between every two steps. */
function step(h: Host, phase: string): string {
  const boot = h.status?.conditions?.find((c) => c.type === 'BootRequested');
  return [h.status?.provisioning?.state ?? 'new', boot ? `${boot.reason}:${boot.status}` : '-', phase].join(
    '/',
  );
}

test('SIGKILL of the controller at every observed step: the host still converges, installed once, powered on once', async () => {
  const system = world.systems[0]!;
  world.machineSettings = { pollMs: 200, installMs: 6000 };
  controller = startController();
  await world.addHost('crash-1', system);
  const machine = world.machine('crash-1');
  const killedAt: string[] = [];
  let last = '';
  const deadline = Date.now() + 240_000;
  for (;;) {
    assert.ok(Date.now() < deadline, `host did not converge; killed at ${killedAt.join(', ')}`);
    const host = await world.host('crash-1');
    const now = step(host, machine.phase);
    if (host.status?.provisioning?.state === 'provisioned' && machine.phase === 'running-disk') break;
    if (now !== last) {
      last = now;
      await controller.kill();
      killedAt.push(now);
      controller = startController();
    }
    await sleep(50);
  }
  // Let the last controller run a few more power polls: still nothing repeated.
  await sleep(5000);
  const host = await world.host('crash-1');
  assert.equal(host.status?.provisioning?.state, 'provisioned');
  assert.equal(host.status?.provisioning?.attempt, 1, 'no second install attempt');
  assert.equal(machine.installs, 1, 'the machine installed once');
  assert.equal(machine.boots.filter((b) => b.via === 'pxe-once').length, 1, 'one network boot');
  assert.equal(world.resetCount(system), 1, 'one power action reached the BMC');
  assert.ok(killedAt.length >= 4, `killed at several steps: ${killedAt.join(', ')}`);
  process.stdout.write(`# controller killed at: ${killedAt.join(' | ')}\n`);
});
