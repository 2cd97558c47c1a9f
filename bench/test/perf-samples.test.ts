/**
 * The perf summary's reading of `perf script -F pid,ip,sym,dso` output: samples split by process,
 * by where they landed (kernel, native, JIT), whether V8 was compiling, and by the tier of the
 * JavaScript on their stack.
 * The fixture has the shapes `perf script` prints for node processes (C++ symbols with
 * parentheses, JIT code named from `/tmp/perf-<pid>.map`, kernel frames).
 */
import { describe, expect, it } from 'vitest';
import { formatSummary, summarize } from '../src/tools/perf-samples.js';

const SCRIPT = `
 9039 
	ffffffffa1c5c0e1 vfs_write ([kernel.kallsyms])
	ffffffffa1c5c2f0 ksys_write ([kernel.kallsyms])
	         14d1124 non-virtual thunk to node::LibuvStreamWrap::DoTryWrite(uv_buf_t**, unsigned long*) (/usr/bin/node)
	    7f74e606fac5 JS:*doWrite node:internal/streams/writable:587:17 (/tmp/perf-9039.map)
	    7f74e606fbb0 JS:*#uncork file:///work/main/packages/core/dist/index.js:4531:13 (/tmp/perf-9039.map)

 9039 
	    7f74e606fac5 JS:*deliver file:///work/main/packages/core/dist/index.js:4154:10 (/tmp/perf-9039.map)
	    7f74e606fbb0 JS:*#dispatch file:///work/main/packages/core/dist/index.js:5365:12 (/tmp/perf-9039.map)

 9039 
	         14cfd1c Builtins_LoadIC (/usr/bin/node)
	    7f74e60aa000 JS:^send file:///work/main/packages/redis/dist/index.js:56:7 (/tmp/perf-9039.map)
	    7f74e60ab000 JS:*route file:///work/main/bench/dist/servers/node-main.js:390:17 (/tmp/perf-9039.map)

 9050 
	         805618 node::Environment::RunTimers(uv_timer_s*) (/usr/bin/node)
	          c494db uv__run_timers (/usr/lib/x86_64-linux-gnu/libuv.so.1)

 9050 
	          ff31a2 v8::internal::compiler::GraphReducer::ReduceTop() (/usr/bin/node)
	          ba7157 v8::internal::OptimizingCompileDispatcher::CompileTask::RunInternal(v8::JobDelegate*) (/usr/bin/node)
`;

describe('perf samples', () => {
  const [sending, idle] = summarize(SCRIPT);

  it('counts each process apart, by where its samples landed', () => {
    expect(sending).toMatchObject({ pid: 9039, samples: 3, kernel: 1, native: 1, jit: 1 });
    expect(idle).toMatchObject({ pid: 9050, samples: 2, kernel: 0, native: 2, jit: 0 });
    expect(sending!.symbols.get('[k] vfs_write')).toBe(1);
    expect(sending!.symbols.get('Builtins_LoadIC')).toBe(1);
    expect(idle!.symbols.get('node::Environment::RunTimers(uv_timer_s*)')).toBe(1);
  });

  it('counts the samples in which V8 was compiling, whatever they landed in', () => {
    expect(sending!.compiling).toBe(0);
    expect(idle!.compiling).toBe(1);
  });

  it('names the innermost JavaScript function of a sample, and the tier it ran in', () => {
    expect(sending).toMatchObject({ optimized: 2, baseline: 1 });
    expect(sending!.functions.get('JS:*doWrite node:internal/streams/writable:587:17')).toBe(1);
    expect(
      sending!.functions.get('JS:^send file:///work/main/packages/redis/dist/index.js:56:7'),
    ).toBe(1);
    expect(idle).toMatchObject({ optimized: 0, baseline: 0 });
    expect(idle!.functions.size).toBe(0);
  });

  it('prints a block per process, most frequent first', () => {
    const text = formatSummary(summarize(SCRIPT), 2);
    expect(text).toContain(
      'pid 9039: 3 samples: kernel 33%, native 33%, JIT code 33%; V8 compiling in 0%',
    );
    expect(text).toContain('JavaScript on the stack in 100% of them: optimized 67%, baseline 33%');
    expect(text).toContain(
      'pid 9050: 2 samples: kernel 0%, native 100%, JIT code 0%; V8 compiling in 50%',
    );
  });
});
