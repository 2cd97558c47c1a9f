/**
 * Reads what `perf script -F pid,ip,sym,dso` prints of a `perf record -g` of node processes, and
 * sums it up per process (see `perf-summary.ts`).
 */

/** What one process's samples were doing. */
export interface ProcessSummary {
  pid: number;
  samples: number;
  kernel: number;
  native: number;
  jit: number;
  /**
   * Samples in V8's compilers (TurboFan on its background thread, lazy compiles, parsing), which
   * the process's CPU time includes: warm-up, not the work measured.
   */
  compiling: number;
  /** Samples with JavaScript on the stack, by the tier of the innermost JS function. */
  optimized: number;
  baseline: number;
  /** Samples per symbol they landed in (`[k]` marks the kernel's). */
  symbols: Map<string, number>;
  /** Samples per innermost JavaScript function on their stack. */
  functions: Map<string, number>;
}

/** One frame of a sample's stack, innermost first, as `perf script -F pid,ip,sym,dso` prints. */
interface Frame {
  symbol: string;
  kernel: boolean;
}

const SAMPLE_HEAD = /^\s*(\d+)\s*$/;
/** A frame of V8 compiling or parsing code. */
const COMPILING =
  /v8::internal::(compiler::|Compiler::|OptimizingCompileDispatcher|Parser)|CompileLazy/;
const FRAME = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/;

/** Reads the output of `perf script -F pid,ip,sym,dso` (with call chains). */
export function summarize(script: string): ProcessSummary[] {
  const byPid = new Map<number, ProcessSummary>();
  let pid = -1;
  let stack: Frame[] = [];
  const flush = () => {
    if (pid >= 0 && stack.length > 0) count(summaryOf(byPid, pid), stack);
    stack = [];
  };
  for (const line of script.split('\n')) {
    const head = SAMPLE_HEAD.exec(line);
    if (head !== null) {
      flush();
      pid = Number(head[1]);
      continue;
    }
    const frame = FRAME.exec(line);
    if (frame !== null) stack.push({ symbol: frame[1]!, kernel: frame[2]!.includes('kernel') });
  }
  flush();
  return [...byPid.values()].sort((a, b) => a.pid - b.pid);
}

function summaryOf(byPid: Map<number, ProcessSummary>, pid: number): ProcessSummary {
  let summary = byPid.get(pid);
  if (summary === undefined) {
    summary = {
      pid,
      samples: 0,
      kernel: 0,
      native: 0,
      jit: 0,
      compiling: 0,
      optimized: 0,
      baseline: 0,
      symbols: new Map(),
      functions: new Map(),
    };
    byPid.set(pid, summary);
  }
  return summary;
}

function count(summary: ProcessSummary, stack: Frame[]): void {
  const leaf = stack[0]!;
  summary.samples++;
  if (leaf.kernel) summary.kernel++;
  else if (leaf.symbol.startsWith('JS:')) summary.jit++;
  else summary.native++;
  add(summary.symbols, leaf.kernel ? `[k] ${leaf.symbol}` : leaf.symbol);
  if (stack.some((frame) => COMPILING.test(frame.symbol))) summary.compiling++;
  // `JS:*name` is TurboFan's code, `JS:^name` Sparkplug's baseline code.
  const js = stack.find((frame) => frame.symbol.startsWith('JS:'));
  if (js === undefined) return;
  if (js.symbol[3] === '*') summary.optimized++;
  else if (js.symbol[3] === '^') summary.baseline++;
  add(summary.functions, js.symbol);
}

function add(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function percent(part: number, whole: number): string {
  return `${whole === 0 ? 0 : Math.round((part / whole) * 100)}%`;
}

function top(counts: Map<string, number>, n: number, samples: number): string[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(
      ([name, hits]) =>
        `    ${String(hits).padStart(6)}  ${percent(hits, samples).padStart(4)}  ${name}`,
    );
}

/** The summary as text, one block per process. */
export function formatSummary(summaries: ProcessSummary[], topN: number): string {
  const lines: string[] = [];
  for (const s of summaries) {
    const withJs = s.optimized + s.baseline;
    lines.push(
      `pid ${s.pid}: ${s.samples} samples: kernel ${percent(s.kernel, s.samples)}, ` +
        `native ${percent(s.native, s.samples)}, JIT code ${percent(s.jit, s.samples)}; ` +
        `V8 compiling in ${percent(s.compiling, s.samples)}`,
      `  JavaScript on the stack in ${percent(withJs, s.samples)} of them: ` +
        `optimized ${percent(s.optimized, withJs)}, baseline ${percent(s.baseline, withJs)}`,
      `  where the samples landed:`,
      ...top(s.symbols, topN, s.samples),
      `  innermost JavaScript function:`,
      ...top(s.functions, topN, s.samples),
      '',
    );
  }
  return lines.join('\n');
}
