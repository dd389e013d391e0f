// Loads Matchbox's wire-compatible .proto files into @grpc/grpc-js service constructors.
import { fileURLToPath } from 'node:url';
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const protoRoot = fileURLToPath(new URL('.', import.meta.url));

export interface MatchboxServices {
  Groups: ServiceClientConstructor;
  Profiles: ServiceClientConstructor;
  Select: ServiceClientConstructor;
  Ignition: ServiceClientConstructor;
  Generic: ServiceClientConstructor;
}

let loaded: MatchboxServices | undefined;

export function matchboxServices(): MatchboxServices {
  if (loaded) return loaded;
  const definition = loadSync('matchbox/rpc/rpcpb/rpc.proto', {
    includeDirs: [protoRoot],
    // Keep the wire's snake_case names (ignition_id, generic_id) so objects match Matchbox's JSON.
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const rpcpb = (loadPackageDefinition(definition) as GrpcObject).rpcpb as GrpcObject;
  loaded = {
    Groups: rpcpb.Groups as ServiceClientConstructor,
    Profiles: rpcpb.Profiles as ServiceClientConstructor,
    Select: rpcpb.Select as ServiceClientConstructor,
    Ignition: rpcpb.Ignition as ServiceClientConstructor,
    Generic: rpcpb.Generic as ServiceClientConstructor,
  };
  return loaded;
}
