#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { subcommands } from './commands.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function usage(): string {
  const width = Math.max(...subcommands.map((c) => c.name.length));
  const lines = subcommands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'metalbox: turns host manifests into booted bare metal (Matchbox, Redfish/IPMI, Talos)',
    '',
    'Usage: metalbox <command> [flags]',
    '',
    'Commands:',
    ...lines,
    '',
    'Flags:',
    '  --help, -h     show this help (or `metalbox <command> --help`)',
    '  --version      print the metalbox version',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === 'version') {
    process.stdout.write(`metalbox ${pkg.version}\n`);
    return 0;
  }
  const command = subcommands.find((c) => c.name === first);
  if (!command) {
    process.stderr.write(`metalbox: unknown command "${first}"\n\n${usage()}\n`);
    return 2;
  }
  const module = await command.load();
  return module.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`metalbox: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
