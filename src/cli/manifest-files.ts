// Reads manifests given as -f arguments (a file, a directory of .yaml/.yml/.json files, or - for
// stdin) into documents labelled with their origin (`path#index`), as kubectl apply -f would.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { SourceDocument } from '../matchbox/render-set.ts';

export interface ReadProblem {
  source: string;
  message: string;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/;

function filesOf(path: string): string[] {
  if (path === '-') return ['-'];
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new Error(`${path}: no such file or directory`);
  if (!stat.isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => MANIFEST_FILE.test(f))
    .sort()
    .map((f) => join(path, f))
    .filter((f) => statSync(f).isFile());
}

/** Every document of every input; `kind: List` documents contribute their items. */
export function readManifests(paths: readonly string[]): {
  documents: SourceDocument[];
  problems: ReadProblem[];
} {
  const documents: SourceDocument[] = [];
  const problems: ReadProblem[] = [];
  for (const path of paths) {
    let files: string[];
    try {
      files = filesOf(path);
    } catch (error) {
      problems.push({ source: path, message: (error as Error).message });
      continue;
    }
    for (const file of files) {
      const text = readFileSync(file === '-' ? 0 : file, 'utf8');
      const label = file === '-' ? '<stdin>' : file;
      parseAllDocuments(text).forEach((doc, index) => {
        const source = `${label}#${index + 1}`;
        if (doc.errors.length) {
          problems.push({ source, message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` });
          return;
        }
        const object = doc.toJS() as unknown;
        const list = object as { kind?: unknown; items?: unknown } | null;
        if (
          list &&
          typeof list.kind === 'string' &&
          list.kind.endsWith('List') &&
          Array.isArray(list.items)
        ) {
          list.items.forEach((item, i) => {
            documents.push({ source: `${source} items[${i}]`, object: item });
          });
        } else {
          documents.push({ source, object });
        }
      });
    }
  }
  return { documents, problems };
}
