import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The README's "Why wscale" states only figures the benchmark report shows: every ratio (`0.87×`),
 * decimal (`19.34`) and count of four digits or more (`3487`) in it must appear in
 * docs/benchmarks.md as written.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));

/** The figures of the README's "Why wscale" section. */
function figures(readme: string): string[] {
  const section = readme.split('## Why wscale')[1]?.split('\n## ')[0] ?? '';
  // Links and code say no figure: `wscale.v1`, `(docs/benchmarks.md#…)`.
  const prose = section.replace(/\([^)]*\.md[^)]*\)/g, '').replace(/`[^`]*`/g, '');
  return [...prose.matchAll(/\d+(?:\.\d+)?×|\d+\.\d+|\b\d[\d ]{2,}\d\b/g)].map(([figure]) =>
    figure.replace(/(\d) (\d)/g, '$1$2'),
  );
}

describe("the README's Why wscale", () => {
  const readme = readFileSync(`${root}/README.md`, 'utf8');
  const report = readFileSync(`${root}/docs/benchmarks.md`, 'utf8').replace(/(\d) (\d)/g, '$1$2');

  it('states figures', () => {
    expect(figures(readme).length).toBeGreaterThan(5);
  });

  it('states only figures the benchmark report shows', () => {
    // As a figure of its own: 3.5 is not in 13.5 or 3.55.
    const shown = (figure: string) =>
      new RegExp(`(?<![\\d.])${figure.replace('.', '\\.')}(?![\\d])`).test(report);
    const missing = figures(readme).filter((figure) => !shown(figure));
    expect(missing).toEqual([]);
  });
});
