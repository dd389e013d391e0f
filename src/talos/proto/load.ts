// Loads the event sink's .proto files (written from Talos's field tables) with protobufjs, the
// library @grpc/proto-loader is built on: the sink decodes `machine.*` payloads out of Any values,
// which needs message types, not just a service definition.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const protoRoot = fileURLToPath(new URL('.', import.meta.url));

let loaded: protobuf.Root | undefined;

export function talosProtoRoot(): protobuf.Root {
  if (loaded) return loaded;
  const root = new protobuf.Root();
  // google/protobuf/* come with protobufjs; everything else from this directory.
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? target : `${protoRoot}${target}`;
  root.loadSync(['events/events.proto', 'machine/events.proto'], { keepCase: true });
  root.resolveAll();
  loaded = root;
  return root;
}

export const ANY_PREFIX = 'type.googleapis.com/';
/** The machine.* payload types Talos publishes (pkg/machinery/client/events.go). */
export const EVENT_TYPES = [
  'SequenceEvent',
  'PhaseEvent',
  'TaskEvent',
  'ServiceStateEvent',
  'ConfigLoadErrorEvent',
  'ConfigValidationErrorEvent',
  'AddressEvent',
  'MachineStatusEvent',
  'RestartEvent',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];
