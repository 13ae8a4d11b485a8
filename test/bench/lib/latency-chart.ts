// Draws latency percentiles per path as an SVG line chart: percentiles along
// the x axis, milliseconds on a logarithmic y axis (tail latencies are often
// ten times the median), one coloured line per path with a legend. Pure: the
// caller writes the returned text to a file.

/** Width and height of the drawing, in SVG user units. */
const WIDTH = 760;
const HEIGHT = 440;

/** Margins around the plot area: room for axis labels, title and legend. */
const MARGIN = { top: 64, right: 170, bottom: 48, left: 64 };

/** Line colours, one per series in order (colour-blind-safe palette). */
const COLOURS = ['#444444', '#d55e00', '#0072b2', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];

/** Mantissas of the y axis's grid lines within each decade. */
const GRID_STEPS = [1, 2, 5];

/** One path's latencies, in ms, in the order of the chart's percentiles. */
export interface LatencySeries {
  name: string;
  valuesMs: readonly number[];
}

/** What to draw. */
export interface LatencyChart {
  title: string;
  subtitle: string;
  /** Labels of the x axis, e.g. p50, p90, p99, p99.9. */
  percentiles: readonly string[];
  series: readonly LatencySeries[];
}

/** Renders the chart as a standalone SVG document. Values <= 0 are left out of the lines. */
export function renderLatencyChart(chart: LatencyChart): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const values = chart.series.flatMap((s) => s.valuesMs.filter((v) => v > 0));
  const low = Math.floor(Math.log10(values.length ? Math.min(...values) : 0.1));
  const high = Math.max(low + 1, Math.ceil(Math.log10(values.length ? Math.max(...values) : 1)));
  const yOf = (ms: number) => MARGIN.top + plotHeight * (1 - (Math.log10(ms) - low) / (high - low));
  const step = chart.percentiles.length > 1 ? plotWidth / (chart.percentiles.length - 1) : 0;
  const xOf = (i: number) =>
    MARGIN.left + (chart.percentiles.length > 1 ? i * step : plotWidth / 2);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
      `viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">${escapeXml(chart.title)}</text>`,
    `<text x="${MARGIN.left}" y="44" fill="#555555">${escapeXml(chart.subtitle)}</text>`,
  ];
  for (const tick of logTicks(low, high)) {
    const y = fixed(yOf(tick));
    parts.push(
      `<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" ` +
        `stroke="#e4e4e4"/>`,
      `<text x="${MARGIN.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">` +
        `${formatMs(tick)}</text>`,
    );
  }
  chart.percentiles.forEach((label, i) => {
    const x = fixed(xOf(i));
    parts.push(
      `<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotHeight}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${MARGIN.top + plotHeight + 20}" text-anchor="middle">${escapeXml(label)}</text>`,
    );
  });
  parts.push(
    `<text transform="translate(18 ${MARGIN.top + plotHeight / 2}) rotate(-90)" ` +
      `text-anchor="middle">latency, ms (log scale)</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" ` +
      `fill="none" stroke="#999999"/>`,
  );
  chart.series.forEach((series, index) => {
    const colour = COLOURS[index % COLOURS.length] as string;
    const points = series.valuesMs
      .map((ms, i) => (ms > 0 ? `${fixed(xOf(i))},${fixed(yOf(ms))}` : undefined))
      .filter((point): point is string => point !== undefined);
    if (points.length > 1) {
      parts.push(
        `<polyline points="${points.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`,
      );
    }
    for (const point of points) {
      const [x, y] = point.split(',');
      parts.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${colour}"/>`);
    }
    const legendY = MARGIN.top + 10 + index * 22;
    const legendX = MARGIN.left + plotWidth + 16;
    parts.push(
      `<line x1="${legendX}" y1="${legendY}" x2="${legendX + 22}" y2="${legendY}" ` +
        `stroke="${colour}" stroke-width="3"/>`,
      `<text x="${legendX + 30}" y="${legendY}" dominant-baseline="middle">` +
        `${escapeXml(series.name)}</text>`,
    );
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}

/** Grid values 1, 2, 5 x 10^k from 10^low up to 10^high. */
export function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  for (let decade = low; decade <= high; decade++) {
    for (const mantissa of GRID_STEPS) {
      const value = mantissa * 10 ** decade;
      if (decade === high && mantissa > 1) break;
      ticks.push(Number(value.toPrecision(3)));
    }
  }
  return ticks;
}

function formatMs(ms: number): string {
  return ms >= 1 ? String(ms) : ms.toPrecision(1);
}

function fixed(n: number): string {
  return n.toFixed(1);
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}
