// `metalbox get <kind> [name...]`: lists objects as kubectl does, with the CRDs' printer columns.
import { objectName, parseOutput, renderObjects, renderTable, tableHeader, tableRows } from './print.ts';
import { knownKindNames } from './resources.ts';
import {
  type CliIo,
  fetchObjects,
  kindArgument,
  NAMESPACE_FLAGS_HELP,
  namespaceFrom,
  parseCommandArgs,
  processIo,
  runCommand,
  UsageError,
  usageWithStoreFlags,
} from './store-command.ts';
import type { StoreFlagValues } from './store-flag.ts';

const USAGE =
  usageWithStoreFlags(`Usage: metalbox get <kind> [name...] [-n namespace | -A] [-o wide|yaml|json|name] [-l key=value]

Kinds: ${knownKindNames()}

${NAMESPACE_FLAGS_HELP}  -o, --output <format>         wide (more columns), yaml, json or name
  -l, --selector <k=v,...>      only objects with these labels
`);

export function run(args: string[]): Promise<number> {
  return main(args, processIo);
}

export function parseSelector(value: string | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const selector: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const m = /^([A-Za-z0-9./_-]+)==?([A-Za-z0-9._-]*)$/.exec(pair.trim());
    if (!m) throw new UsageError(`--selector "${pair}" is not key=value (only equality is supported)`);
    selector[m[1]!] = m[2]!;
  }
  return selector;
}

export function main(args: string[], io: CliIo): Promise<number> {
  return runCommand('get', USAGE, io, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      output: { type: 'string', short: 'o' },
      selector: { type: 'string', short: 'l' },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [kindName, ...names] = positionals;
    const kind = kindArgument(kindName);
    const output = parseOutput(values.output as string | undefined);
    if (!output) throw new UsageError(`--output "${values.output}" is not one of wide, yaml, json, name`);
    const all = values['all-namespaces'] === true && kind.kind.namespaced;
    if (all && names.length > 0) throw new UsageError('a name cannot be given with --all-namespaces');
    const namespace = kind.kind.namespaced ? namespaceFrom(values, io.env) : undefined;
    const selector = parseSelector(values.selector as string | undefined);
    return {
      values: values as StoreFlagValues,
      run: async (store) => {
        const { objs, failed } = await fetchObjects(store, io, kind, { names, namespace, all, selector });
        if (names.length === 0 && objs.length === 0) return 0;
        if (output === 'yaml' || output === 'json') io.out(renderObjects(objs, output, names.length === 1));
        else if (output === 'name') io.out(objs.map((o) => `${objectName(kind, o)}\n`).join(''));
        else if (objs.length > 0) {
          const options = { wide: output === 'wide', withNamespace: all, now: io.now() };
          io.out(renderTable([tableHeader(kind, options), ...tableRows(kind, objs, options)]));
        }
        return failed > 0 ? 1 : 0;
      },
    };
  });
}
