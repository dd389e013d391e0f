// Writes docs/baremetalhost-states.md from the host controller's transition table.
// `--check`: exit 1 when the file differs (the unit test does the same check).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderStateDocs } from '../src/controllers/baremetalhost/state-docs.ts';

const file = fileURLToPath(new URL('../docs/baremetalhost-states.md', import.meta.url));
const text = renderStateDocs();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {}
  if (current !== text) {
    process.stderr.write(`${file} is out of date: run bash scripts/node scripts/gen-state-docs.ts\n`);
    process.exit(1);
  }
} else {
  writeFileSync(file, text);
  process.stdout.write(`wrote ${file}\n`);
}
