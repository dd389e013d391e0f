// `metalbox render -f <file|dir|->`: offline, prints the exact Matchbox objects metalbox would
// write for the given MatchboxProfile/MatchboxGroup manifests (for review in a pull request).
import { parseArgs } from 'node:util';
import { renderManifests } from '../matchbox/render-set.ts';
import { readManifests } from './manifest-files.ts';

const USAGE = `Usage: metalbox render -f <file|dir|-> [-f ...] [-n namespace]

Prints, as JSON, the Matchbox profiles, groups and generic templates metalbox would write to every
Matchbox endpoint for the MatchboxProfile and MatchboxGroup manifests given. Nothing is contacted.
Secrets in the input resolve generic templates by reference; their content is shown only as size
and sha256.

  -f, --filename   manifest file, directory (its .yaml/.yml/.json files) or - for stdin; repeatable
  -n, --namespace  namespace of manifests that name none (default: default)

Exit code 1 when a manifest is invalid (each problem is printed on stderr with its file).
`;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export async function run(args: string[]): Promise<number> {
  let values: { filename?: string[]; namespace?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`metalbox render: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.filename?.length) {
    process.stderr.write(`metalbox render: -f is required\n\n${USAGE}`);
    return 2;
  }
  const namespace = values.namespace ?? 'default';
  if (!DNS_LABEL.test(namespace) || namespace.length > 63) {
    process.stderr.write(`metalbox render: namespace "${namespace}" is not a lowercase RFC 1123 label\n`);
    return 2;
  }
  const { documents, problems } = readManifests(values.filename);
  const set = renderManifests(documents, { defaultNamespace: namespace });
  for (const w of set.warnings) process.stderr.write(`warning: ${w.source}: ${w.message}\n`);
  const errors = [...problems, ...set.errors];
  for (const e of errors) process.stderr.write(`error: ${e.source}: ${e.message}\n`);
  const ignored = Object.entries(set.ignored);
  if (ignored.length) {
    process.stderr.write(
      `not rendered (not Matchbox objects): ${ignored.map(([k, n]) => `${n} ${k}`).join(', ')}\n`,
    );
  }
  if (errors.length) {
    process.stderr.write(`metalbox render: ${errors.length} problem(s); nothing rendered\n`);
    return 1;
  }
  const { profiles, groups, generic } = set;
  process.stdout.write(`${JSON.stringify({ profiles, groups, generic }, null, 2)}\n`);
  return 0;
}
