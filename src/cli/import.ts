// `metalbox import <matchbox-data-path>`: an existing Matchbox data dir as metalbox manifests.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { importDataDir, toYamlStream } from '../matchbox/import.ts';

const USAGE = `Usage: metalbox import <matchbox-data-path> [-n namespace] [-o file]

Reads a Matchbox data directory (profiles/*.json, groups/*.json, generic/) and writes equivalent
MatchboxProfile and MatchboxGroup manifests (generic templates as Secrets) as a YAML stream.

  -n, --namespace  namespace of the manifests (default: default)
  -o, --output     write to this file instead of stdout

Files that cannot be imported are listed on stderr with the reason; the exit code is then 1.
`;

export async function run(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    process.stderr.write(`metalbox import: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`metalbox import: expected one Matchbox data path\n\n${USAGE}`);
    return 2;
  }
  const dataPath = positionals[0]!;
  const namespace = values.namespace ?? 'default';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    process.stderr.write(`metalbox import: namespace "${namespace}" is not a lowercase RFC 1123 label\n`);
    return 2;
  }
  let result: ReturnType<typeof importDataDir>;
  try {
    result = importDataDir(dataPath, { namespace });
  } catch (error) {
    process.stderr.write(`metalbox import: ${(error as Error).message}\n`);
    return 1;
  }
  const yaml = toYamlStream(
    result.manifests,
    `Imported from the Matchbox data directory ${dataPath} by metalbox import.`,
  );
  if (values.output) writeFileSync(values.output, yaml);
  else process.stdout.write(yaml);

  for (const w of result.warnings) process.stderr.write(`warning: ${w.file}: ${w.message}\n`);
  for (const e of result.errors) process.stderr.write(`error: ${e.file}: ${e.message}\n`);
  const { profiles, groups } = result.sourceIds;
  if (profiles.length || groups.length) {
    // metalbox writes its own ids (<namespace>.<name>) and never touches objects it does not own,
    // so the originals stay in Matchbox, with the same selectors, until someone removes them.
    process.stderr.write(
      `note: once metalbox has written these objects, delete the originals from each Matchbox ` +
        `(they are not owned by metalbox and would match the same machines): ` +
        `profiles ${profiles.join(', ') || '(none)'}; groups ${groups.join(', ') || '(none)'}\n`,
    );
  }
  const count = (kind: string) => result.manifests.filter((m) => m.kind === kind).length;
  process.stderr.write(
    `imported ${count('MatchboxProfile')} profiles, ${count('MatchboxGroup')} groups, ${count('Secret')} generic templates` +
      `${result.errors.length ? `; ${result.errors.length} file(s) could not be imported` : ''}\n`,
  );
  return result.errors.length ? 1 : 0;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
