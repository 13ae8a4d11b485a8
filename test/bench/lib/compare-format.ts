// Renders a comparison report for people: text tables for the terminal, the
// same headline table in Markdown for the README, and the latency chart.
import { formatTable } from '../../../agent/cli/output.js';
import { errorCount } from './agent-report.js';
import {
  HEADLINE_METRICS,
  MB,
  PATH_NAMES,
  type CompareReport,
  type Headline,
  type PathName,
} from './compare-report.js';
import { renderLatencyChart } from './latency-chart.js';
import { isMutualTls13 } from './tls-probe.js';

/** Percentiles the chart draws, with the wrk figure each comes from. */
const CHART_PERCENTILES = [
  { label: 'p50', pick: 'p50Ms' },
  { label: 'p90', pick: 'p90Ms' },
  { label: 'p99', pick: 'p99Ms' },
  { label: 'p99.9', pick: 'p999Ms' },
] as const;

/** How each path is named in tables and the chart. */
const PATH_LABELS: Record<PathName, string> = {
  direct: 'direct',
  palisade: 'Palisade',
  haproxy: 'HAProxy',
  stunnel: 'stunnel',
  nginx: 'nginx stream',
};

/** Renders the whole report for the terminal. */
export function formatCompareReport(report: CompareReport): string {
  const { machine, loadAverage } = report;
  const header =
    `comparison benchmark, ${report.startedAt} (${report.wallSeconds} s)\n` +
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ` +
    `${(machine.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, node ${machine.node}, ${machine.os}\n` +
    `load average at start ${formatLoad(loadAverage.atStart)}, at end ${formatLoad(loadAverage.atEnd)}\n` +
    `wrk: ${report.settings.connections} connections, ${report.settings.threads} thread, ` +
    `${report.settings.durationSeconds} s windows after ${report.settings.warmupSeconds} s warm-ups; ` +
    `bulk ${report.settings.bulkMib} MiB on one connection\n`;
  const paths = orderedPaths(report);
  const figures = formatTable(
    ['path', ...HEADLINE_METRICS.map((m) => m.label), 'errors', 'others cpu', 'mTLS 1.3 probe'],
    paths.map((path) => {
      const headline = report.headlines[path] ?? {};
      const measured = report.paths.find((p) => p.path === path);
      const others = [measured?.keepAlive, measured?.newConnection, measured?.bulk]
        .map((w) => w?.meter.othersCpuPercent)
        .filter((v): v is number => v !== undefined);
      const probe = measured?.probe;
      return [
        PATH_LABELS[path],
        ...HEADLINE_METRICS.map((m) => formatValue(headline[m.key])),
        String(
          [measured?.keepAlive, measured?.newConnection].reduce(
            (sum, w) => sum + (w ? errorCount(w.load) : 0),
            0,
          ),
        ),
        others.length ? `${Math.max(...others)}%` : '-',
        probe ? (isMutualTls13(probe) ? 'ok' : `FAILED ${JSON.stringify(probe)}`) : '-',
      ];
    }),
  );
  const ratioTable = (title: string, ratios: Partial<Record<PathName, Headline>>) =>
    `${title}\n` +
    formatTable(
      ['path', ...HEADLINE_METRICS.map((m) => m.label)],
      paths.map((path) => [
        PATH_LABELS[path],
        ...HEADLINE_METRICS.map((m) => formatRatio(ratios[path]?.[m.key])),
      ]),
    );
  const skipped = report.skipped.map((s) => `skipped ${s.path}: ${s.reason}\n`).join('');
  return [
    header,
    figures + footnote(report),
    ratioTable('ratio to direct', report.ratios.toDirect),
    ratioTable('ratio to HAProxy', report.ratios.toHaproxy),
    formatExtras(report),
    'targets of the performance issue\n' +
      formatTable(
        ['target', 'this run', 'met'],
        report.targets.map((t) => [
          t.target,
          t.value,
          t.isMet === undefined ? '-' : t.isMet ? 'yes' : 'NO',
        ]),
      ),
    skipped,
  ]
    .filter((part) => part)
    .join('\n');
}

/** The headline table as Markdown, each figure with its ratio to HAProxy, for the README. */
export function formatMarkdownTable(report: CompareReport): string {
  const paths = orderedPaths(report);
  const header = ['path', ...HEADLINE_METRICS.map((m) => m.label)];
  const rows = paths.map((path) => [
    PATH_LABELS[path],
    ...HEADLINE_METRICS.map((m) => {
      const value = report.headlines[path]?.[m.key];
      const ratio = path === 'haproxy' ? undefined : report.ratios.toHaproxy[path]?.[m.key];
      if (value === undefined) return '-';
      return ratio === undefined ? formatValue(value) : `${formatValue(value)} (x${ratio})`;
    }),
  ]);
  // Padded as prettier pads Markdown tables: first column left, figures right.
  const widths = header.map((h, i) =>
    Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const pad = (cell: string, i: number) =>
    i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0);
  const line = (cells: string[]) => `| ${cells.map(pad).join(' | ')} |`;
  const rule = widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`));
  return [line(header), `| ${rule.join(' | ')} |`, ...rows.map(line), ''].join('\n');
}

/** The footnote on how each peer runs. */
export function footnote(report: CompareReport): string {
  const notes = Object.entries(report.peerDefaults).map(([peer, text]) => `  ${peer}: ${text}`);
  return (
    'Each path: client -> proxy -> mutual TLS 1.3 (P-256 certificates from one CA, client ' +
    'certificates verified on both hops) -> proxy -> app; session reuse at each default.\n' +
    'Proxy RSS is the highest sampled sum over every process of both instances; CPU is ' +
    'summed over the measured windows.\n' +
    (notes.length ? `${notes.join('\n')}\n` : '')
  );
}

/** The SVG chart of keep-alive latency percentiles per path. */
export function renderCompareChart(report: CompareReport): string {
  const series = orderedPaths(report).flatMap((path) => {
    const load = report.paths.find((p) => p.path === path)?.keepAlive?.load;
    return load
      ? [{ name: PATH_LABELS[path], valuesMs: CHART_PERCENTILES.map((p) => load[p.pick]) }]
      : [];
  });
  return renderLatencyChart({
    title: 'Keep-alive latency by percentile, two-hop mutual TLS 1.3',
    subtitle:
      `wrk, ${report.settings.connections} connections, 1 KiB responses; ` +
      `${report.machine.cores}-core ${report.machine.cpuModel}, ${report.startedAt.slice(0, 10)}`,
    percentiles: CHART_PERCENTILES.map((p) => p.label),
    series,
  });
}

function formatExtras(report: CompareReport): string {
  const { signing, fanout, startup, memory } = report.palisade;
  const rows: string[][] = [];
  const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
  if (memory) {
    rows.push([
      'agent RSS idle (A / B)',
      `${mb(memory.idleRssBytes.a)} / ${mb(memory.idleRssBytes.b)}`,
    ]);
    rows.push([
      `agent RSS with ${memory.held.count} open connections (A / B)`,
      `${mb(memory.held.rssBytes.a)} / ${mb(memory.held.rssBytes.b)} (opened in ${memory.held.openMs} ms)`,
    ]);
    rows.push([
      'agent peak RSS over the run (A / B)',
      `${mb(memory.peakRssBytes.a)} / ${mb(memory.peakRssBytes.b)}`,
    ]);
  }
  if (startup) {
    rows.push([
      `agent start to ready, P-256 (median of ${startup.runsMs.length})`,
      `${Math.round(startup.medianMs)} ms (runs ${startup.runsMs.map(Math.round).join(', ')} ms)`,
    ]);
  }
  if (signing) {
    rows.push([
      `CA signings/s, gRPC Issue, ${signing.keyType} (${signing.clients} x ${signing.inFlightPerClient} in flight)`,
      `${Math.round(signing.signingsPerSecond)} (p50 ${signing.latency.p50Ms} ms, p99 ${signing.latency.p99Ms} ms, ${signing.errors} errors)`,
    ]);
  }
  if (fanout) {
    rows.push([
      `revocation fan-out to ${fanout.streams} watchers (${fanout.revocations} revocations)`,
      `p50 ${fanout.arrival.p50Ms} ms, p99 ${fanout.arrival.p99Ms} ms, ` +
        `${fanout.expectedArrivals - fanout.missingArrivals} of ${fanout.expectedArrivals} arrived`,
    ]);
  }
  return rows.length
    ? `Palisade beyond the data path\n${formatTable(['figure', 'value'], rows)}`
    : '';
}

function orderedPaths(report: CompareReport): PathName[] {
  return PATH_NAMES.filter((path) => report.paths.some((p) => p.path === path));
}

function formatValue(value: number | undefined): string {
  if (value === undefined) return '-';
  return value >= 1000 ? Math.round(value).toLocaleString('en-US') : String(value);
}

function formatRatio(ratio: number | undefined): string {
  return ratio === undefined ? '-' : `x${ratio}`;
}

function formatLoad(load: readonly number[]): string {
  return load.map((n) => n.toFixed(2)).join(' ');
}
