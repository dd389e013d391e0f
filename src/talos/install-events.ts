// What Talos's events mean for an install (talos.md §5): decode an EventRequest's Any payload into a
// typed event, and turn an event into an install signal. Pure, so the sink and its tests share it.
import { ANY_PREFIX, EVENT_TYPES, type EventType, talosProtoRoot } from './proto/load.ts';

export type TalosEvent =
  | {
      type: 'SequenceEvent';
      sequence: string;
      action: 'NOOP' | 'START' | 'STOP';
      error?: { code: string; message: string };
    }
  | { type: 'PhaseEvent'; phase: string; action: 'START' | 'STOP' }
  | { type: 'TaskEvent'; task: string; action: 'START' | 'STOP' }
  | { type: 'ServiceStateEvent'; service: string; action: string; message: string }
  | { type: 'RestartEvent'; cmd: string }
  | { type: 'ConfigLoadErrorEvent'; error: string }
  | { type: 'ConfigValidationErrorEvent'; error: string }
  | { type: 'AddressEvent'; hostname: string; addresses: string[] }
  | {
      type: 'MachineStatusEvent';
      stage: string;
      status: { ready: boolean; unmet_conditions: { name: string; reason: string }[] };
    }
  | { type: 'unknown'; typeUrl: string };

export interface EventEnvelope {
  id: string;
  event: TalosEvent;
}

const DECODE = { enums: String, longs: String, defaults: true } as const;

/** Decodes a serialized events.EventRequest. Throws on malformed protobuf. */
export function decodeEventRequest(bytes: Uint8Array): EventEnvelope {
  const root = talosProtoRoot();
  const request = root.lookupType('events.EventRequest');
  const msg = request.toObject(request.decode(bytes), DECODE) as {
    id: string;
    data?: { type_url: string; value: Uint8Array };
  };
  return { id: msg.id, event: decodeAny(msg.data?.type_url ?? '', msg.data?.value ?? new Uint8Array()) };
}

export function decodeAny(typeUrl: string, value: Uint8Array): TalosEvent {
  const name = typeUrl.startsWith(`${ANY_PREFIX}machine.`) ? typeUrl.slice(ANY_PREFIX.length + 8) : '';
  if (!(EVENT_TYPES as readonly string[]).includes(name)) return { type: 'unknown', typeUrl };
  const type = talosProtoRoot().lookupType(`machine.${name}`);
  const body = type.toObject(type.decode(value), DECODE) as Record<string, unknown>;
  return { type: name as EventType, ...body } as TalosEvent;
}

/** Encodes a machine.* payload as an EventRequest (the simulated machine and tests publish these). */
export function encodeEventRequest(id: string, type: EventType, body: Record<string, unknown>): Uint8Array {
  const root = talosProtoRoot();
  const payload = root.lookupType(`machine.${type}`);
  const value = payload.encode(payload.fromObject(body)).finish();
  const request = root.lookupType('events.EventRequest');
  return request
    .encode(request.fromObject({ id, data: { type_url: `${ANY_PREFIX}machine.${type}`, value } }))
    .finish();
}

/** RestartEvent.cmd values (unix.Reboot commands). */
export const RESTART_KEXEC = 0x45584543;
export const RESTART_REBOOT = 0x01234567;

export type InstallSignal =
  | { kind: 'installing'; message: string }
  | { kind: 'installed'; message: string }
  | {
      kind: 'failed';
      reason: 'ConfigLoadError' | 'ConfigValidationError' | 'InstallSequenceFailed';
      message: string;
    }
  | { kind: 'booted'; message: string }
  | { kind: 'wiped'; message: string }
  | { kind: 'ready'; ready: boolean; message: string };

/** Where the host is, as far as the signals go (kept in status: lastObservedBoot and conditions). */
export interface InstallProgress {
  /** The install phase started in this attempt and has not ended. */
  installing: boolean;
}

/**
 * The signal an event carries (Sidero's adapter keys on the same events), or undefined.
 * `SequenceEvent … STOP` is never a signal: Talos publishes it after success and failure alike.
 */
export function interpret(event: TalosEvent, progress: InstallProgress): InstallSignal | undefined {
  switch (event.type) {
    case 'ConfigLoadErrorEvent':
      return { kind: 'failed', reason: 'ConfigLoadError', message: event.error };
    case 'ConfigValidationErrorEvent':
      return { kind: 'failed', reason: 'ConfigValidationError', message: event.error };
    case 'PhaseEvent':
      if (event.phase === 'install' && event.action === 'START')
        return { kind: 'installing', message: 'install phase started' };
      if (event.phase === 'kexec' && event.action === 'START' && progress.installing) {
        return { kind: 'installed', message: 'install finished: kexec into the installed system' };
      }
      return undefined;
    case 'RestartEvent':
      if (!progress.installing) return undefined;
      return {
        kind: 'installed',
        message: `install finished: ${Number(event.cmd) === RESTART_KEXEC ? 'kexec' : 'reboot'} into the installed system`,
      };
    case 'TaskEvent':
      // talos.experimental.wipe=system: the system disk was wiped at boot.
      if (event.task === 'wipeSystemDisk' && event.action === 'STOP')
        return { kind: 'wiped', message: 'the system disk was wiped' };
      return undefined;
    case 'SequenceEvent':
      if (event.sequence === 'boot' && event.action === 'START')
        return { kind: 'booted', message: 'boot sequence started from disk' };
      if (event.sequence === 'install' && event.action === 'NOOP' && event.error?.code === 'FATAL') {
        // The reboot task ends the install sequence with a RebootError ("unix.Reboot(…)"): success.
        if (event.error.message.includes('unix.Reboot')) {
          return {
            kind: 'installed',
            message: 'install sequence ended in the reboot into the installed system',
          };
        }
        return { kind: 'failed', reason: 'InstallSequenceFailed', message: event.error.message };
      }
      return undefined;
    case 'MachineStatusEvent': {
      if (event.stage === 'INSTALLING') return { kind: 'installing', message: 'machine stage installing' };
      // Talos wipes at boot, before it acquires a config: in maintenance mode after a cleaning
      // boot's fetch, the wipe is done (its own events may have come before the fetch, unmatched).
      if (event.stage === 'MAINTENANCE')
        return { kind: 'wiped', message: 'the machine waits in maintenance mode after its wipe' };
      if (event.stage !== 'RUNNING') return undefined;
      const unmet = event.status.unmet_conditions.map((c) => `${c.name}: ${c.reason}`).join('; ');
      return event.status.ready
        ? { kind: 'ready', ready: true, message: 'machine running and ready' }
        : { kind: 'ready', ready: false, message: `machine running, not ready${unmet ? ` (${unmet})` : ''}` };
    }
    default:
      return undefined;
  }
}
