import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** How a code block says what it is (docs/README.md explains the markers). */
export type SnippetKind = 'run' | 'fragment';

/** One fenced `ts` or `js` block of the documentation. */
export interface Snippet {
  /** `path/to/file.md:line` of the opening fence, for messages. */
  where: string;
  /** The markdown file, relative to the repository root. */
  file: string;
  /** Line of the opening fence, from 1. */
  line: number;
  lang: 'ts' | 'js';
  /** `undefined` when the block carries no marker: the check refuses it. */
  kind: SnippetKind | undefined;
  /** `continues`: the block goes on from the previous block of its file (one module). */
  continues: boolean;
  /** `in=<folder>`: the block is a file of that folder (its relative imports, its packages). */
  folder: string | undefined;
  /** Words after the marker that the check does not know. */
  unknown: string[];
  code: string;
  /** For `run` blocks: the `text output` block that follows, what the program must print. */
  output: string | undefined;
}

/** Info strings that name TypeScript or JavaScript, so that no spelling escapes the check. */
const LANGUAGES: Record<string, 'ts' | 'js' | undefined> = {
  ts: 'ts',
  typescript: 'ts',
  mts: 'ts',
  js: 'js',
  javascript: 'js',
  mjs: 'js',
};

interface Fence {
  line: number;
  lang: string;
  words: string[];
  body: string;
}

/** The markdown files whose code is checked: READMEs and docs/*.md (not generated API pages). */
export function documentationFiles(): string[] {
  const inFolders = (parent: string, name: string) =>
    readdirSync(join(ROOT, parent), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(parent, entry.name, name));
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name));
  return ['README.md', ...inFolders('packages', 'README.md'), ...inFolders('examples', 'README.md')]
    .filter((file) => existsSync(join(ROOT, file)))
    .concat(docs)
    .sort();
}

/** Every `ts` / `js` block of the documentation files, with its marker and expected output. */
export function documentationSnippets(files = documentationFiles()): Snippet[] {
  return files.flatMap((file) => snippetsOf(file, readFileSync(join(ROOT, file), 'utf8')));
}

/** The `ts` / `js` blocks of one markdown text; blocks in other languages are skipped. */
export function snippetsOf(file: string, markdown: string): Snippet[] {
  const fences = fencesOf(markdown);
  const snippets: Snippet[] = [];
  fences.forEach((fence, index) => {
    const lang = LANGUAGES[fence.lang.toLowerCase()];
    if (lang === undefined) return;
    const [marker, ...attributes] = fence.words;
    const kind = marker === 'run' || marker === 'fragment' ? marker : undefined;
    const folder = attributes.find((word) => word.startsWith('in='))?.slice('in='.length);
    const next = fences[index + 1];
    const output =
      kind === 'run' && next?.lang === 'text' && next.words[0] === 'output' ? next.body : undefined;
    snippets.push({
      where: `${file}:${fence.line}`,
      file,
      line: fence.line,
      lang,
      kind,
      continues: attributes.includes('continues'),
      folder,
      unknown: attributes.filter((word) => word !== 'continues' && !word.startsWith('in=')),
      code: fence.body,
      output,
    });
  });
  return snippets;
}

/** Fenced blocks (backticks or tildes, indented in lists or not), in order. */
function fencesOf(markdown: string): Fence[] {
  const lines = markdown.split('\n');
  const fences: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*(.*)$/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent = '', mark = '', info = ''] = open;
    const [lang = '', ...words] = info.trim().split(/\s+/);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j]!);
      if (close !== null && close[1]![0] === mark[0] && close[1]!.length >= mark.length) break;
      body.push(
        lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!.trimStart(),
      );
    }
    fences.push({ line: i + 1, lang, words, body: `${body.join('\n')}\n` });
    i = j;
  }
  return fences;
}
