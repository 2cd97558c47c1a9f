import { join } from 'node:path';
import ts from 'typescript';
import { ROOT, type Snippet } from './snippets.js';

const PRELUDE = join(ROOT, 'docs/test/prelude.d.ts');

/** One module of the program: a block, and the blocks that continue it. */
interface Module {
  text: string;
  /** The block and markdown line of each line of `text`. */
  lines: Array<{ snippet: Snippet; line: number }>;
}

/**
 * Type-checks blocks in one strict program, against the built packages' declarations as a user
 * would install them (resolved from docs/node_modules, or from the `in=` folder's). Each block is
 * a module of its own (its names do not clash with another's) unless it `continues` the previous
 * block of its file; the placeholders a block may use unset are declared once, in prelude.d.ts.
 * Returns the errors as `file.md:line: text`, by the `where` of the block they are in.
 */
export function typeCheck(snippets: Snippet[]): Map<string, string[]> {
  const modules = new Map<string, Module>();
  let previous: Module | undefined;
  let previousFile = '';
  snippets.forEach((snippet, index) => {
    const code = snippet.code.replace(/\n$/, '').split('\n');
    const lines = code.map((_, i) => ({ snippet, line: snippet.line + 1 + i }));
    if (snippet.continues && previous !== undefined && previousFile === snippet.file) {
      previous.text += `\n${code.join('\n')}`;
      previous.lines.push(...lines);
      return;
    }
    // In docs/ (or the block's folder) so that imports resolve as there; never written to disk.
    const folder = join(ROOT, snippet.folder ?? 'docs');
    previous = { text: code.join('\n'), lines };
    previousFile = snippet.file;
    modules.set(join(folder, `.snippet-${index}.${snippet.lang}`), previous);
  });

  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts'],
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
    strict: true,
    exactOptionalPropertyTypes: true,
    allowJs: true,
    checkJs: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
  };
  const host = ts.createCompilerHost(options);
  // `export {}` makes every module a module: top-level await, and names of its own.
  const source = (file: string) => {
    const module = modules.get(file);
    return module === undefined ? undefined : `${module.text}\nexport {};\n`;
  };
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (file, language, ...rest) => {
    const text = source(file);
    return text === undefined
      ? getSourceFile.call(host, file, language, ...rest)
      : ts.createSourceFile(file, text, language, true);
  };
  host.fileExists = (file) => modules.has(file) || fileExists.call(host, file);
  host.readFile = (file) => source(file) ?? readFile.call(host, file);

  const program = ts.createProgram([PRELUDE, ...modules.keys()], options, host);
  const errors = new Map<string, string[]>();
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    const file = diagnostic.file;
    const line =
      file !== undefined && diagnostic.start !== undefined
        ? file.getLineAndCharacterOfPosition(diagnostic.start).line
        : 0;
    const at = file === undefined ? undefined : modules.get(file.fileName)?.lines[line];
    const key = at?.snippet.where ?? file?.fileName ?? 'the program';
    const where = at === undefined ? `${key}:${line + 1}` : `${at.snippet.file}:${at.line}`;
    errors.set(key, [...(errors.get(key) ?? []), `${where}: ${text}`]);
  }
  return errors;
}
