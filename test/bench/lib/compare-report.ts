// The comparison's figures: what each path measured, each headline figure as
// a ratio to the direct path and to HAProxy, the floors checked
// against them, and the report written as JSON. Pure apart from the write.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PerAgent } from './agent-report.js';
import type { MachineInfo } from './bench-report.js';
import type { BulkResult } from './bulk-transfer.js';
import type { StartupFigures } from './agent-footprint.js';
import type { SigningLoadResult } from './signing-load.js';
import type { MutualTlsProbe } from './tls-probe.js';
import type { FanoutResult } from './trust-fanout.js';
import type { WrkResult } from './wrk-load.js';

/** Every path, in the order they run and print. */
export const PATH_NAMES = ['direct', 'palisade', 'haproxy', 'stunnel', 'nginx'] as const;

/** One way from the load generator to the app. */
export type PathName = (typeof PATH_NAMES)[number];

/** The headline figures, in table order, with whether more is better. */
export const HEADLINE_METRICS = [
  { key: 'keepAliveRps', label: 'keep-alive req/s', isHigherBetter: true },
  { key: 'p50Ms', label: 'p50 ms', isHigherBetter: false },
  { key: 'p99Ms', label: 'p99 ms', isHigherBetter: false },
  { key: 'p999Ms', label: 'p99.9 ms', isHigherBetter: false },
  { key: 'newConnectionRps', label: 'new-conn req/s', isHigherBetter: true },
  { key: 'bulkMBps', label: 'bulk MB/s', isHigherBetter: true },
  { key: 'proxyPeakRssMB', label: 'proxy peak RSS MB', isHigherBetter: false },
  { key: 'proxyCpuSeconds', label: 'proxy CPU s', isHigherBetter: false },
] as const;

/** Key of one headline figure. */
export type HeadlineKey = (typeof HEADLINE_METRICS)[number]['key'];

/** The headline figures of one path; undefined where it was not measured. */
export type Headline = Partial<Record<HeadlineKey, number>>;

/** Resource use over one measurement window. */
export interface MeteredWindow {
  wallSeconds: number;
  /** CPU time of both proxy instances (all their processes and threads), in seconds. */
  proxyCpuSeconds: number;
  /** Highest sum of both instances' RSS sampled during the window, in bytes. */
  proxyRssMaxBytes: number;
  /** CPU time the rest of the machine used, in percent of one core. */
  othersCpuPercent: number;
}

/** What one path measured. */
export interface PathFigures {
  path: PathName;
  keepAlive?: { load: WrkResult; meter: MeteredWindow };
  newConnection?: { load: WrkResult; meter: MeteredWindow };
  bulk?: { result: BulkResult; meter: MeteredWindow };
  /** The server-side proxy's TLS check; absent on the direct path. */
  probe?: MutualTlsProbe;
}

/** A path left out, and why. */
export interface SkippedPath {
  path: PathName;
  reason: string;
}

/** Palisade figures beyond the data path. */
export interface PalisadeExtras {
  signing?: SigningLoadResult & { keyType: string; clients: number; inFlightPerClient: number };
  fanout?: FanoutResult;
  startup?: StartupFigures;
  /** Idle RSS, RSS with the held connections open, and peaks at the end of the run. */
  memory?: {
    idleRssBytes: PerAgent<number>;
    held: { count: number; openMs: number; rssBytes: PerAgent<number> };
    peakRssBytes: PerAgent<number>;
  };
}

/** One floor from the performance issue and whether this run met it. */
export interface TargetCheck {
  target: string;
  value: string;
  isMet: boolean | undefined;
}

/** Everything one comparison run produced. */
export interface CompareReport {
  startedAt: string;
  wallSeconds: number;
  machine: MachineInfo;
  loadAverage: { atStart: number[]; atEnd: number[] };
  settings: Record<string, unknown>;
  /** Version line of wrk and of each peer used. */
  tools: Record<string, string>;
  /** Threads and processes each peer runs with, for the footnote. */
  peerDefaults: Record<string, string>;
  skipped: SkippedPath[];
  paths: PathFigures[];
  headlines: Partial<Record<PathName, Headline>>;
  ratios: {
    toDirect: Partial<Record<PathName, Headline>>;
    toHaproxy: Partial<Record<PathName, Headline>>;
  };
  palisade: PalisadeExtras;
  targets: TargetCheck[];
}

/** Bytes in a megabyte, the unit of memory and bulk figures. */
export const MB = 1e6;

/** The headline figures of one path's measurements. */
export function headlineOf(figures: PathFigures): Headline {
  const windows = [figures.keepAlive?.meter, figures.newConnection?.meter, figures.bulk?.meter];
  const meters = windows.filter((m): m is MeteredWindow => m !== undefined);
  const isProxied = figures.path !== 'direct' && meters.length > 0;
  const headline: Headline = {};
  const set = (key: HeadlineKey, value: number | undefined) => {
    if (value !== undefined) headline[key] = value;
  };
  set('keepAliveRps', figures.keepAlive?.load.requestsPerSecond);
  set('p50Ms', figures.keepAlive?.load.p50Ms);
  set('p99Ms', figures.keepAlive?.load.p99Ms);
  set('p999Ms', figures.keepAlive?.load.p999Ms);
  set('newConnectionRps', figures.newConnection?.load.requestsPerSecond);
  set('bulkMBps', figures.bulk ? roundTo(figures.bulk.result.megabytesPerSecond, 0) : undefined);
  if (isProxied) {
    set('proxyPeakRssMB', roundTo(Math.max(...meters.map((m) => m.proxyRssMaxBytes)) / MB, 1));
    set(
      'proxyCpuSeconds',
      roundTo(
        meters.reduce((sum, m) => sum + m.proxyCpuSeconds, 0),
        2,
      ),
    );
  }
  return headline;
}

/** Each figure of `headline` divided by the same figure of `base`, where both exist. */
export function ratioOf(headline: Headline, base: Headline | undefined): Headline {
  const ratios: Headline = {};
  if (!base) return ratios;
  for (const { key } of HEADLINE_METRICS) {
    const value = headline[key];
    const baseValue = base[key];
    if (value === undefined || baseValue === undefined || baseValue === 0) continue;
    ratios[key] = roundTo(value / baseValue, 2);
  }
  return ratios;
}

/** The floors for Palisade, checked against this run (undefined: not measured). */
export function checkTargets(
  headlines: Partial<Record<PathName, Headline>>,
  extras: PalisadeExtras,
): TargetCheck[] {
  const p = headlines.palisade ?? {};
  const h = headlines.haproxy ?? {};
  const s = headlines.stunnel ?? {};
  const compare = (
    target: string,
    value: number | undefined,
    bound: number | undefined,
    isMet: (v: number, b: number) => boolean,
    unit = '',
  ): TargetCheck => ({
    target,
    value: value === undefined ? '-' : `${value}${unit}`,
    isMet: value === undefined || bound === undefined ? undefined : isMet(value, bound),
  });
  const memory = extras.memory;
  const startupMs = extras.startup ? Math.round(extras.startup.medianMs) : undefined;
  const maxOf = (pair: PerAgent<number> | undefined) =>
    pair ? roundTo(Math.max(pair.a, pair.b) / MB, 1) : undefined;
  return [
    compare(
      'keep-alive req/s >= 0.8x HAProxy',
      p.keepAliveRps,
      h.keepAliveRps,
      (v, b) => v >= 0.8 * b,
    ),
    compare('keep-alive req/s > stunnel', p.keepAliveRps, s.keepAliveRps, (v, b) => v > b),
    compare('p99 <= 1.5x HAProxy', p.p99Ms, h.p99Ms, (v, b) => v <= 1.5 * b, ' ms'),
    compare(
      'new-connection req/s > stunnel',
      p.newConnectionRps,
      s.newConnectionRps,
      (v, b) => v > b,
    ),
    compare('bulk MB/s >= 0.8x HAProxy', p.bulkMBps, h.bulkMBps, (v, b) => v >= 0.8 * b),
    compare('agent RSS idle <= 60 MB', maxOf(memory?.idleRssBytes), 60, (v, b) => v <= b, ' MB'),
    compare(
      `agent RSS with ${memory?.held.count ?? 1000} connections <= 120 MB`,
      maxOf(memory?.held.rssBytes),
      120,
      (v, b) => v <= b,
      ' MB',
    ),
    compare('start to ready < 1 s (P-256)', startupMs, 1000, (v, b) => v < b, ' ms'),
  ];
}

/** Writes the report as `compare-<ISO time>.json` under `dir`; returns the file's path. */
export function writeCompareReportJson(dir: string, report: CompareReport): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `compare-${fileStamp(report.startedAt)}.json`);
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/** An ISO time made safe for a file name (no colons or dots). */
export function fileStamp(iso: string): string {
  return iso.replace(/[:.]/g, '-');
}

/** Rounds to `digits` decimals. */
export function roundTo(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
