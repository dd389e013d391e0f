// `metalbox watch <kind> [name]`: prints the objects, then every change as it happens (an EVENT
// column, or one JSON/YAML document per change), until Ctrl-C or --timeout. Runs on an Informer,
// so a compacted store or a broken stream is recovered by relisting, as controllers do.

import { stringify } from 'yaml';
import { Informer } from '../runtime/informer.ts';
import type { Resource } from '../runtime/resource.ts';
import { columnWidths, parseOutput, renderTable, tableHeader, tableRows } from './print.ts';
import { knownKindNames } from './resources.ts';
import {
  type CliIo,
  kindArgument,
  NAMESPACE_FLAGS_HELP,
  namespaceFrom,
  parseCommandArgs,
  parseDuration,
  processIo,
  runCommand,
  UsageError,
  usageWithStoreFlags,
} from './store-command.ts';
import type { StoreFlagValues } from './store-flag.ts';

const USAGE = usageWithStoreFlags(`Usage: metalbox watch <kind> [name] [-n namespace | -A] [-o wide|json|yaml]

Prints the objects of a kind, then each change (ADDED, MODIFIED, DELETED) as it happens, until
interrupted. Kinds: ${knownKindNames()}

${NAMESPACE_FLAGS_HELP}  -o, --output <format>         wide, json (one {"type","object"} per line) or yaml
  --timeout <duration>          stop after this long (default: never)
`);

export function run(args: string[]): Promise<number> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return main(args, { ...processIo, signal: ac.signal }).finally(() => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  });
}

export function main(args: string[], io: CliIo): Promise<number> {
  return runCommand('watch', USAGE, io, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      output: { type: 'string', short: 'o' },
      timeout: { type: 'string' },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [kindName, name, ...extra] = positionals;
    const kind = kindArgument(kindName);
    if (extra.length > 0) throw new UsageError('watch takes at most one name');
    const output = parseOutput(values.output as string | undefined);
    if (!output || output === 'name')
      throw new UsageError(`--output "${values.output}" is not one of wide, json, yaml`);
    const timeoutMs =
      values.timeout === undefined ? undefined : parseDuration('timeout', values.timeout as string);
    const all = values['all-namespaces'] === true && kind.kind.namespaced;
    const namespace = kind.kind.namespaced && !all ? namespaceFrom(values, io.env) : undefined;
    return {
      values: values as StoreFlagValues,
      run: async (store) => {
        const informer = new Informer(store, kind.kind, { ...(namespace ? { namespace } : {}), resyncMs: 0 });
        const options = { wide: output === 'wide', withNamespace: all, now: io.now() };
        let widths: number[] | undefined;
        const print = (type: string, obj: Resource) => {
          if (name !== undefined && obj.metadata.name !== name) return;
          if (output === 'json') io.out(`${JSON.stringify({ type, object: obj })}\n`);
          else if (output === 'yaml') io.out(`---\n${stringify({ type, object: obj }, { lineWidth: 0 })}`);
          else {
            const lead = { name: 'EVENT', values: [type] };
            const now = { ...options, now: io.now(), lead };
            const rows = [tableHeader(kind, now), ...tableRows(kind, [obj], now)];
            if (!widths) {
              // Fix the layout on the first row so later rows line up (kubectl does the same).
              widths = columnWidths(rows).map((w) => w + 2);
              io.out(renderTable([rows[0]!], widths));
            }
            io.out(renderTable([rows[1]!], widths));
          }
        };
        informer.on('add', (o) => print('ADDED', o));
        informer.on('update', (o) => print('MODIFIED', o));
        informer.on('delete', (o) => print('DELETED', o));
        informer.start();
        await new Promise<void>((resolve) => {
          const timer = timeoutMs === undefined ? undefined : setTimeout(resolve, timeoutMs);
          io.signal?.addEventListener(
            'abort',
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
        await informer.stop();
        return 0;
      },
    };
  });
}
