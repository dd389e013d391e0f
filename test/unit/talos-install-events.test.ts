import assert from 'node:assert/strict';
import { test } from 'node:test';
import { installRunEvents } from '../../src/sim/talos-events.ts';
import {
  decodeEventRequest,
  encodeEventRequest,
  interpret,
  RESTART_KEXEC,
  type TalosEvent,
} from '../../src/talos/install-events.ts';

const roundTrip = (type: Parameters<typeof encodeEventRequest>[1], body: Record<string, unknown>) =>
  decodeEventRequest(encodeEventRequest('id-1', type, body));

test('EventRequest Any payloads decode to typed machine events', () => {
  assert.deepEqual(
    roundTrip('SequenceEvent', {
      sequence: 'install',
      action: 'NOOP',
      error: { code: 'FATAL', message: 'm' },
    }),
    {
      id: 'id-1',
      event: {
        type: 'SequenceEvent',
        sequence: 'install',
        action: 'NOOP',
        error: { code: 'FATAL', message: 'm', details: [] },
      },
    },
  );
  assert.deepEqual(roundTrip('RestartEvent', { cmd: RESTART_KEXEC }).event, {
    type: 'RestartEvent',
    cmd: String(RESTART_KEXEC),
  });
  assert.deepEqual(roundTrip('MachineStatusEvent', { stage: 'RUNNING', status: { ready: true } }).event, {
    type: 'MachineStatusEvent',
    stage: 'RUNNING',
    status: { ready: true, unmet_conditions: [] },
  });
});

test('a sequence STOP is never a success signal (Talos publishes it after failures too)', () => {
  for (const sequence of ['install', 'boot', 'initialize']) {
    assert.equal(
      interpret({ type: 'SequenceEvent', sequence, action: 'STOP' }, { installing: true }),
      undefined,
    );
  }
});

test('kexec and restart mean installed only while installing; the unix.Reboot sequence error always does', () => {
  const kexec: TalosEvent = { type: 'PhaseEvent', phase: 'kexec', action: 'START' };
  const restart: TalosEvent = { type: 'RestartEvent', cmd: String(RESTART_KEXEC) };
  assert.equal(interpret(kexec, { installing: false }), undefined, 'an upgrade kexec later on');
  assert.equal(interpret(restart, { installing: false }), undefined);
  assert.equal(interpret(kexec, { installing: true })?.kind, 'installed');
  assert.match(interpret(restart, { installing: true })!.message, /kexec/);
  const rebootError: TalosEvent = {
    type: 'SequenceEvent',
    sequence: 'install',
    action: 'NOOP',
    error: { code: 'FATAL', message: 'sequence failed: unix.Reboot(45584543)' },
  };
  assert.equal(interpret(rebootError, { installing: false })?.kind, 'installed');
});

test('in the simulated install run, the first installed signal comes after the install phase', () => {
  let installing = false;
  const kinds: string[] = [];
  for (const e of installRunEvents('h', '127.0.0.1')) {
    const event = decodeEventRequest(encodeEventRequest('x', e.type, e.body)).event;
    const signal = interpret(event, { installing });
    if (signal?.kind === 'installing') installing = true;
    if (signal) kinds.push(signal.kind);
  }
  assert.deepEqual([...new Set(kinds)], ['installing', 'installed']);
  assert.equal(kinds.indexOf('installed') > kinds.indexOf('installing'), true);
});
