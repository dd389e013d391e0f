// `metalbox delete <kind> <name...>` or `metalbox delete -f <file|dir|->`: deletes objects. An
// object with finalizers is only marked (its controller cleans up, then it goes); --wait waits.
import { setTimeout as sleep } from 'node:timers/promises';
import { isNotFound } from '../runtime/errors.ts';
import type { Resource } from '../runtime/resource.ts';
import type { ResourceStore } from '../runtime/store.ts';
import { readManifests } from './manifest-files.ts';
import { type CliKind, kindOfObject, knownKindNames } from './resources.ts';
import {
  type CliIo,
  formatError,
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

const USAGE = usageWithStoreFlags(`Usage: metalbox delete <kind> <name...> [-n namespace]
       metalbox delete -f <file|dir|-> [-n namespace]

Kinds: ${knownKindNames()}

${NAMESPACE_FLAGS_HELP.split('\n')[0]}
  -f, --filename <path>         delete the objects named in these manifests
  --wait                        wait until the objects are gone (finalizers done)
  --timeout <duration>          with --wait: give up after this long (default 60s; exit 1)
  --ignore-not-found            a missing object is not an error
`);

export function run(args: string[]): Promise<number> {
  return main(args, processIo);
}

interface Target {
  kind: CliKind;
  namespace: string | undefined;
  name: string;
}

export function main(args: string[], io: CliIo): Promise<number> {
  return runCommand('delete', USAGE, io, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      filename: { type: 'string', short: 'f', multiple: true },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
      'ignore-not-found': { type: 'boolean' },
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const namespace = namespaceFrom(values, io.env);
    const timeoutMs = parseDuration('timeout', (values.timeout as string | undefined) ?? '60s');
    const files = (values.filename as string[] | undefined) ?? [];
    const targets: Target[] = [];
    let problems = 0;
    if (files.length > 0) {
      if (positionals.length > 0) throw new UsageError('give either -f or a kind and names, not both');
      const read = readManifests(files);
      for (const p of read.problems) io.err(`error: ${p.source}: ${p.message}\n`);
      problems += read.problems.length;
      for (const doc of read.documents) {
        const obj = doc.object as Resource;
        const kind = kindOfObject(obj?.apiVersion, obj?.kind);
        if (!kind || typeof obj.metadata?.name !== 'string') {
          io.err(`error: ${doc.source}: not a known kind with a name\n`);
          problems++;
          continue;
        }
        const ns = kind.kind.namespaced ? (obj.metadata.namespace ?? namespace) : undefined;
        targets.push({ kind, namespace: ns, name: obj.metadata.name });
      }
    } else {
      const [kindName, ...names] = positionals;
      if (!kindName || names.length === 0) throw new UsageError('a kind and at least one name are required');
      const kind = kindArgument(kindName);
      for (const name of names)
        targets.push({ kind, namespace: kind.kind.namespaced ? namespace : undefined, name });
    }
    return {
      values: values as StoreFlagValues,
      run: async (store) => {
        let failed = problems;
        for (const t of targets) {
          const ok = await deleteOne(store, t, io, {
            wait: values.wait === true,
            timeoutMs,
            ignoreNotFound: values['ignore-not-found'] === true,
          });
          if (!ok) failed++;
        }
        return failed > 0 ? 1 : 0;
      },
    };
  });
}

async function deleteOne(
  store: ResourceStore,
  t: Target,
  io: CliIo,
  options: { wait: boolean; timeoutMs: number; ignoreNotFound: boolean },
): Promise<boolean> {
  const ref = { namespace: t.namespace, name: t.name };
  const label = `${t.kind.singularQualified} "${t.name}"`;
  try {
    await store.delete(t.kind.kind, ref);
  } catch (error) {
    if (isNotFound(error) && options.ignoreNotFound) return true;
    io.err(`${formatError(error, t.kind, t.name)}\n`);
    return false;
  }
  const pending = await stillThere(store, t);
  if (!pending) {
    io.out(`${label} deleted\n`);
    return true;
  }
  const finalizers = pending.metadata.finalizers ?? [];
  if (!options.wait) {
    io.out(`${label} marked for deletion (waiting for finalizers: ${finalizers.join(', ')})\n`);
    return true;
  }
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline && !io.signal?.aborted) {
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
    if (!(await stillThere(store, t))) {
      io.out(`${label} deleted\n`);
      return true;
    }
  }
  const left = (await stillThere(store, t))?.metadata.finalizers ?? finalizers;
  io.err(`error: timed out waiting for ${label} to be deleted (finalizers left: ${left.join(', ')})\n`);
  return false;
}

async function stillThere(store: ResourceStore, t: Target): Promise<Resource | undefined> {
  try {
    return await store.get(t.kind.kind, { namespace: t.namespace, name: t.name });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}
