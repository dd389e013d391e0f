// The registry of metalbox.io kinds: names, schemas and printer columns of each, in one place for
// the stores (validation), the CRD generator, the CLI and the controllers.
import type { z } from 'zod';
import type { BareMetalHost } from './baremetalhost.ts';
import {
  bareMetalHost,
  bareMetalHostColumns,
  bareMetalHostSpec,
  bareMetalHostStatus,
} from './baremetalhost.ts';
import { API_VERSION, GROUP, type PrinterColumn, VERSION } from './common.ts';
import type { MatchboxGroup } from './matchboxgroup.ts';
import {
  matchboxGroup,
  matchboxGroupColumns,
  matchboxGroupSpec,
  matchboxGroupStatus,
} from './matchboxgroup.ts';
import type { MatchboxProfile } from './matchboxprofile.ts';
import {
  matchboxProfile,
  matchboxProfileColumns,
  matchboxProfileSpec,
  matchboxProfileStatus,
} from './matchboxprofile.ts';
import type { TalosMachineConfig } from './talosmachineconfig.ts';
import {
  talosMachineConfig,
  talosMachineConfigColumns,
  talosMachineConfigSpec,
  talosMachineConfigStatus,
} from './talosmachineconfig.ts';

export interface KindDefinition<
  K extends string = string,
  S extends z.ZodType = z.ZodType,
  Spec extends z.ZodType = z.ZodType,
  Status extends z.ZodType = z.ZodType,
> {
  group: typeof GROUP;
  version: typeof VERSION;
  apiVersion: typeof API_VERSION;
  kind: K;
  listKind: `${K}List`;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  categories: readonly string[];
  scope: 'Namespaced';
  /** The whole object: apiVersion, kind, metadata, spec, status. */
  schema: S;
  spec: Spec;
  status: Status;
  printerColumns: readonly PrinterColumn[];
}

function define<K extends string, S extends z.ZodType, Spec extends z.ZodType, Status extends z.ZodType>(
  d: Omit<
    KindDefinition<K, S, Spec, Status>,
    'group' | 'version' | 'apiVersion' | 'listKind' | 'scope' | 'categories'
  >,
): KindDefinition<K, S, Spec, Status> {
  return {
    group: GROUP,
    version: VERSION,
    apiVersion: API_VERSION,
    listKind: `${d.kind}List`,
    scope: 'Namespaced',
    categories: ['metalbox'],
    ...d,
  };
}

export const BareMetalHostKind = define({
  kind: 'BareMetalHost',
  plural: 'baremetalhosts',
  singular: 'baremetalhost',
  shortNames: ['bmh'],
  schema: bareMetalHost,
  spec: bareMetalHostSpec,
  status: bareMetalHostStatus,
  printerColumns: bareMetalHostColumns,
});

export const MatchboxProfileKind = define({
  kind: 'MatchboxProfile',
  plural: 'matchboxprofiles',
  singular: 'matchboxprofile',
  shortNames: ['mbp'],
  schema: matchboxProfile,
  spec: matchboxProfileSpec,
  status: matchboxProfileStatus,
  printerColumns: matchboxProfileColumns,
});

export const MatchboxGroupKind = define({
  kind: 'MatchboxGroup',
  plural: 'matchboxgroups',
  singular: 'matchboxgroup',
  shortNames: ['mbg'],
  schema: matchboxGroup,
  spec: matchboxGroupSpec,
  status: matchboxGroupStatus,
  printerColumns: matchboxGroupColumns,
});

export const TalosMachineConfigKind = define({
  kind: 'TalosMachineConfig',
  plural: 'talosmachineconfigs',
  singular: 'talosmachineconfig',
  shortNames: ['tmc'],
  schema: talosMachineConfig,
  spec: talosMachineConfigSpec,
  status: talosMachineConfigStatus,
  printerColumns: talosMachineConfigColumns,
});

/** Every kind, in a fixed order (the order CRDs are generated and installed in). */
export const KINDS = [
  BareMetalHostKind,
  MatchboxProfileKind,
  MatchboxGroupKind,
  TalosMachineConfigKind,
] as const;
export type AnyKindDefinition = (typeof KINDS)[number];
export type KindName = AnyKindDefinition['kind'];

/** The kind's definition, or undefined when apiVersion/kind is not a metalbox.io kind. */
export function kindFor(apiVersion: unknown, kind: unknown): AnyKindDefinition | undefined {
  if (apiVersion !== API_VERSION) return undefined;
  return KINDS.find((k) => k.kind === kind);
}

export function kindByPlural(plural: string): AnyKindDefinition | undefined {
  return KINDS.find((k) => k.plural === plural);
}

export type { BareMetalHost, BareMetalHostSpec, BareMetalHostStatus } from './baremetalhost.ts';
export type { Condition, LocalObjectReference, ObjectMeta, SecretKeyReference } from './common.ts';
export { API_VERSION, GROUP, normalizeMac, VERSION } from './common.ts';
export type { MatchboxGroup, MatchboxGroupSpec, MatchboxGroupStatus } from './matchboxgroup.ts';
export type { MatchboxProfile, MatchboxProfileSpec, MatchboxProfileStatus } from './matchboxprofile.ts';
export type {
  TalosMachineConfig,
  TalosMachineConfigSpec,
  TalosMachineConfigStatus,
} from './talosmachineconfig.ts';

/** Any metalbox.io object. */
export type MetalboxObject = BareMetalHost | MatchboxProfile | MatchboxGroup | TalosMachineConfig;
