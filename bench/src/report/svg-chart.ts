import type { Spread } from './aggregate.js';

/** One bar: a median with its range over the rounds. */
export interface Bar {
  label: string;
  value: Spread;
  /** Drawn in the baseline colour. */
  baseline?: boolean;
  /** Drawn in wscale's colour. */
  own?: boolean;
  /** Drawn in the experiments' colour. */
  experiment?: boolean;
}

const WIDTH = 760;
const LABEL_WIDTH = 270;
const VALUE_WIDTH = 90;
const ROW = 30;
const TOP = 48;
const BOTTOM = 28;

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A horizontal bar chart as a standalone SVG: one bar per implementation (the median), a whisker
 * for the range over the rounds, the value at the end. No dependencies.
 */
export function barChart(title: string, unit: string, bars: Bar[], digits = 2): string {
  const height = TOP + bars.length * ROW + BOTTOM;
  const plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 10;
  const top = Math.max(...bars.map((bar) => bar.value.max), 1e-9);
  const x = (value: number) => LABEL_WIDTH + (value / top) * plot;
  const rows = bars.map((bar, i) => {
    const y = TOP + i * ROW;
    const colour = bar.own
      ? '#2563eb'
      : bar.baseline
        ? '#6b7280'
        : bar.experiment
          ? '#a855f7'
          : '#f59e0b';
    const mid = y + ROW / 2;
    const value = bar.value.median.toFixed(digits);
    return [
      `<text x="${LABEL_WIDTH - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y + 6}" width="${Math.max(1, x(bar.value.median) - LABEL_WIDTH).toFixed(1)}" height="${ROW - 12}" fill="${colour}" rx="2"/>`,
      bar.value.rounds > 1
        ? `<line x1="${x(bar.value.min).toFixed(1)}" x2="${x(bar.value.max).toFixed(1)}" y1="${mid}" y2="${mid}" stroke="#111827" stroke-width="1.5"/>` +
          `<line x1="${x(bar.value.min).toFixed(1)}" x2="${x(bar.value.min).toFixed(1)}" y1="${mid - 5}" y2="${mid + 5}" stroke="#111827" stroke-width="1.5"/>` +
          `<line x1="${x(bar.value.max).toFixed(1)}" x2="${x(bar.value.max).toFixed(1)}" y1="${mid - 5}" y2="${mid + 5}" stroke="#111827" stroke-width="1.5"/>`
        : '',
      `<text x="${(x(bar.value.max) + 6).toFixed(1)}" y="${mid + 4}">${value} ${escapeXml(unit)}</text>`,
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="13" fill="#111827">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="24" font-size="15" font-weight="600">${escapeXml(title)}</text>`,
    `<line x1="${LABEL_WIDTH}" x2="${LABEL_WIDTH}" y1="${TOP - 4}" y2="${TOP + bars.length * ROW + 4}" stroke="#9ca3af"/>`,
    ...rows,
    `<text x="12" y="${height - 8}" font-size="11" fill="#6b7280">bar: median over rounds; whisker: min–max. Grey: baseline, blue: wscale, purple: experiment.</text>`,
    '</svg>',
    '',
  ].join('\n');
}
