// Renders the data-path benchmark's figures as text tables, each mesh figure
// beside its ratio to the direct connection (and the HTTP-mode figures beside
// the plain TCP mesh), and writes them, with the machine they came from and
// how busy it was, as JSON.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTable } from '../../../agent/cli/output.js';
import type { MachineInfo } from './bench-report.js';
import type { BulkResult } from './bulk-transfer.js';
import type { ProfileSummary } from './cpu-profile.js';
import type { WrkResult } from './wrk-load.js';

/** Above this much CPU used by other processes (% of one core), a window's figures are suspect. */
export const BUSY_MACHINE_PERCENT = 20;

/** How many profile entries the terminal report shows per agent. */
const PRINTED_PROFILE_ENTRIES = 15;

/** Bytes in a mebibyte, for memory figures. */
const MIB = 1024 * 1024;

/**
 * How the app client reaches the app server: straight, through the mesh with
 * agent B passing TCP through, or through the mesh with agent B' in HTTP mode
 * checking a bearer token on every request.
 */
export type PathKind = 'direct' | 'mesh' | 'mesh-http';

/**
 * What kind of load a window carries. `http-authz` is keep-alive requests
 * carrying an `Authorization: Bearer` token, on all three paths.
 */
export type ScenarioKind = 'keep-alive' | 'new-connection' | 'bulk' | 'http-authz';

/** The paths each scenario runs on, in order. */
export const SCENARIO_PATHS: Readonly<Record<ScenarioKind, readonly PathKind[]>> = {
  'keep-alive': ['direct', 'mesh'],
  'new-connection': ['direct', 'mesh'],
  bulk: ['direct', 'mesh'],
  'http-authz': ['direct', 'mesh', 'mesh-http'],
};

/** The two agents: A carries the app client's connections out, B carries them in. */
export interface PerAgent<T> {
  a: T;
  b: T;
}

/** CPU and memory around one measurement window, the rest of the machine included. */
export interface WindowResources {
  wallSeconds: number;
  agentCpuSeconds: PerAgent<number>;
  /** CPU time of both agents over wall time, in percent of one core. */
  agentCpuPercent: number;
  /** CPU time of both agents per request (per MB for bulk), in microseconds. */
  agentCpuUsPerUnit: number;
  appCpuSeconds: number;
  /** CPU used by the load generator: wrk, or the bench itself for bulk. */
  loadCpuSeconds: number;
  /** CPU the rest of the machine used during the window (softirq aside), in % of one core. */
  othersCpuPercent: number;
  /** Machine-wide soft-interrupt time during the window, mostly loopback traffic, in % of one core. */
  softirqCpuPercent: number;
  /** Highest VmRSS sampled during the window, in bytes. */
  agentRssMaxBytes: PerAgent<number>;
}

/** One measured window: what the load saw and what it cost. */
export interface WindowFigures {
  load?: WrkResult;
  bulk?: BulkResult;
  resources: WindowResources;
}

/** A scenario on one path: every attempt, and the quietest one, which is reported. */
export interface ScenarioFigures {
  scenario: ScenarioKind;
  path: PathKind;
  reported: WindowFigures;
  /** Every attempt in order; attempts past the first were made because the machine was busy. */
  attempts: WindowFigures[];
  /** Whether even the reported attempt had other processes above the busy threshold. */
  isBusy: boolean;
}

/** One agent's memory and CPU over the whole run. */
export interface SingleAgentFootprint {
  /** VmRSS once ready, before any load, in bytes. */
  idleRssBytes: number;
  /** Highest VmRSS sampled under load, in bytes. */
  loadRssMaxBytes: number;
  /** VmHWM at the end of the run, in bytes. */
  peakRssBytes: number;
  /** CPU time from start to the end of the run, in seconds. */
  totalCpuSeconds: number;
}

/** Agent memory and CPU over the whole run. */
export interface AgentFootprint {
  /** VmRSS once ready, before any load, in bytes. */
  idleRssBytes: PerAgent<number>;
  /** Highest VmRSS sampled under load, in bytes. */
  loadRssMaxBytes: PerAgent<number>;
  /** VmHWM at the end of the run, in bytes. */
  peakRssBytes: PerAgent<number>;
  /** CPU time from start to the end of the run, in seconds. */
  totalCpuSeconds: PerAgent<number>;
  /** The HTTP-mode agent B', when the `http-authz` scenario ran. */
  bHttp?: SingleAgentFootprint;
}

/** Everything one run of the data-path bench produced. */
export interface AgentBenchReport {
  startedAt: string;
  machine: MachineInfo;
  /** 1, 5 and 15 minute load averages as the run started and ended. */
  loadAverage: { atStart: number[]; atEnd: number[] };
  settings: Record<string, unknown>;
  scenarios: ScenarioFigures[];
  agents: AgentFootprint;
  profiles?: PerAgent<ProfileSummary> & { bHttp?: ProfileSummary };
}

/** Renders the whole report as text tables. */
export function formatAgentReport(report: AgentBenchReport): string {
  const { machine, settings } = report;
  const header =
    `agent data-path benchmark, ${report.startedAt}\n` +
    `machine: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, ${machine.os}\n` +
    `load average at start / end: ${loadOf(report.loadAverage.atStart)} / ${loadOf(report.loadAverage.atEnd)}\n` +
    `wrk: ${String(settings.connections)} connections, ${String(settings.threads)} thread(s), ` +
    `${String(settings.durationSeconds)} s windows; bulk ${String(settings.bulkMib)} MiB\n\n`;
  const find = (scenario: ScenarioKind, path: PathKind) =>
    report.scenarios.find((s) => s.scenario === scenario && s.path === path);

  const requestRows: string[][] = [];
  for (const scenario of ['keep-alive', 'new-connection', 'http-authz'] as const) {
    const direct = find(scenario, 'direct')?.reported.load;
    for (const path of SCENARIO_PATHS[scenario]) {
      const figures = find(scenario, path);
      const load = figures?.reported.load;
      if (!figures || !load) continue;
      const r = figures.reported.resources;
      requestRows.push([
        scenario,
        path,
        withRatio(load.requestsPerSecond, direct?.requestsPerSecond),
        withRatio(load.p50Ms, direct?.p50Ms),
        withRatio(load.p99Ms, direct?.p99Ms),
        String(errorCount(load)),
        `${r.agentCpuSeconds.a.toFixed(2)} / ${r.agentCpuSeconds.b.toFixed(2)} s`,
        path === 'direct' ? '-' : String(Math.round(r.agentCpuUsPerUnit)),
        `${r.othersCpuPercent}%${figures.isBusy ? ' (busy)' : ''}`,
        `${r.softirqCpuPercent}%`,
        String(figures.attempts.length),
      ]);
    }
  }
  const requests = formatTable(
    [
      'scenario',
      'path',
      'req/s',
      'p50 ms',
      'p99 ms',
      'errors',
      'agent cpu A / B',
      'agent us/req',
      'others cpu',
      'softirq',
      'attempts',
    ],
    requestRows,
  );

  const httpMode = formatHttpModeComparison(find('http-authz', 'mesh-http'), [
    { name: 'mesh (tcp, same token)', figures: find('http-authz', 'mesh') },
    { name: 'keep-alive mesh (tcp)', figures: find('keep-alive', 'mesh') },
    { name: 'direct (same token)', figures: find('http-authz', 'direct') },
  ]);

  const directBulk = find('bulk', 'direct')?.reported.bulk;
  const bulkRows = (['direct', 'mesh'] as const).flatMap((path) => {
    const figures = find('bulk', path);
    const bulk = figures?.reported.bulk;
    if (!figures || !bulk) return [];
    const r = figures.reported.resources;
    return [
      [
        path,
        withRatio(bulk.megabytesPerSecond, directBulk?.megabytesPerSecond),
        bulk.seconds.toFixed(2),
        `${r.agentCpuSeconds.a.toFixed(2)} / ${r.agentCpuSeconds.b.toFixed(2)} s`,
        path === 'mesh' ? String(Math.round(r.agentCpuUsPerUnit)) : '-',
        `${r.othersCpuPercent}%${figures.isBusy ? ' (busy)' : ''}`,
        `${r.softirqCpuPercent}%`,
        String(figures.attempts.length),
      ],
    ];
  });
  const bulk = formatTable(
    [
      'bulk',
      'MB/s',
      'seconds',
      'agent cpu A / B',
      'agent us/MB',
      'others cpu',
      'softirq',
      'attempts',
    ],
    bulkRows,
  );

  const a = report.agents;
  const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;
  const memoryRow = (name: string, f: SingleAgentFootprint) => [
    name,
    mib(f.idleRssBytes),
    mib(f.loadRssMaxBytes),
    mib(f.peakRssBytes),
    `${f.totalCpuSeconds.toFixed(2)} s`,
  ];
  const memory = formatTable(
    ['agent', 'rss idle', 'rss under load (max)', 'VmHWM', 'cpu total'],
    [
      ...(['a', 'b'] as const).map((k) =>
        memoryRow(k.toUpperCase(), {
          idleRssBytes: a.idleRssBytes[k],
          loadRssMaxBytes: a.loadRssMaxBytes[k],
          peakRssBytes: a.peakRssBytes[k],
          totalCpuSeconds: a.totalCpuSeconds[k],
        }),
      ),
      ...(a.bHttp ? [memoryRow("B' (http)", a.bHttp)] : []),
    ],
  );

  const busy = report.scenarios.filter((s) => s.isBusy);
  const busyNote = busy.length
    ? `note: other processes used over ${BUSY_MACHINE_PERCENT}% of a core during ` +
      `${busy.map((s) => `${s.scenario}/${s.path}`).join(', ')} even after retries; ` +
      `agent us/req is the steadier figure there\n`
    : '';
  const profiles = report.profiles
    ? `\n${formatProfile('A (outbound)', report.profiles.a)}\n${formatProfile('B (inbound)', report.profiles.b)}` +
      (report.profiles.bHttp
        ? `\n${formatProfile("B' (inbound, HTTP mode)", report.profiles.bHttp)}`
        : '')
    : '';
  const pathNote =
    `paths: mesh = A -> mTLS -> B (TCP pass-through) -> app; mesh-http = A -> mTLS -> B' ` +
    `(HTTP mode, bearer token verified and scope checked per request) -> app; ` +
    `agent cpu B column is B' on mesh-http rows\n`;
  return `${header}${requests}${pathNote}\n${httpMode}${bulk}\n${memory}${busyNote}${profiles}`;
}

/** Writes the report as `agent-<ISO time>.json` under `dir`; returns the file's path. */
export function writeAgentReportJson(dir: string, report: AgentBenchReport): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `agent-${report.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/** Total socket errors and bad statuses of a wrk run. */
export function errorCount(load: WrkResult): number {
  const e = load.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}

/**
 * The `http-authz` scenario's HTTP-mode path beside its plain TCP mesh path
 * and its direct path (all three under the same keep-alive load with the same
 * bearer token), and beside the `keep-alive` scenario's plain mesh when that
 * ran; each with the HTTP-mode figure's ratio to it. Empty when the scenario
 * did not run.
 */
function formatHttpModeComparison(
  http: ScenarioFigures | undefined,
  baselines: { name: string; figures: ScenarioFigures | undefined }[],
): string {
  const httpLoad = http?.reported.load;
  if (!http || !httpLoad) return '';
  const present = baselines.flatMap(({ name, figures }) =>
    figures?.reported.load ? [{ name, figures, load: figures.reported.load }] : [],
  );
  const usPerRequest = (figures: ScenarioFigures) =>
    figures.path === 'direct' ? undefined : figures.reported.resources.agentCpuUsPerUnit;
  const cell = (value: number | undefined, base: number | undefined) => {
    if (value === undefined) return '-';
    const shown = String(Math.round(value * 100) / 100);
    return base && value ? `${shown} (x${(base / value).toFixed(2)})` : shown;
  };
  const figureRows: [string, (f: ScenarioFigures) => number | undefined][] = [
    ['req/s', (f) => f.reported.load?.requestsPerSecond],
    ['p50 ms', (f) => f.reported.load?.p50Ms],
    ['p99 ms', (f) => f.reported.load?.p99Ms],
    ['errors', (f) => (f.reported.load ? errorCount(f.reported.load) : undefined)],
    ['agent us/req', usPerRequest],
  ];
  const rows = figureRows.map(([label, pick]) => {
    const httpValue = pick(http);
    const isRatioShown = label !== 'errors';
    return [
      label,
      cell(httpValue, undefined),
      ...present.map(({ figures }) => cell(pick(figures), isRatioShown ? httpValue : undefined)),
    ];
  });
  return (
    "http-authz: keep-alive through agent B' in HTTP mode (token and scope checked on every " +
    'request);\neach other column in brackets: mesh-http / that column\n' +
    formatTable(
      [
        `figure`,
        `mesh-http${http.isBusy ? ' (busy)' : ''}`,
        ...present.map((p) => `${p.name}${p.figures.isBusy ? ' (busy)' : ''}`),
      ],
      rows,
    ) +
    '\n'
  );
}

function loadOf(averages: number[]): string {
  return averages.map((n) => n.toFixed(2)).join(' ');
}

function withRatio(value: number, direct: number | undefined): string {
  if (!direct) return String(value);
  return `${value} (x${(value / direct).toFixed(2)})`;
}

function formatProfile(agent: string, profile: ProfileSummary): string {
  const rows = (entries: ProfileSummary['functions']) =>
    entries
      .slice(0, PRINTED_PROFILE_ENTRIES)
      .map((e) => [`${e.selfPercent}%`, `${e.selfMs} ms`, e.name]);
  return (
    `agent ${agent} profile: ${profile.totalMs} ms sampled, ${profile.idlePercent}% idle\n` +
    formatTable(['self', 'time', 'function'], rows(profile.functions)) +
    formatTable(['self', 'time', 'module'], rows(profile.modules)) +
    formatTable(['total', 'time', 'palisade function'], rows(profile.palisadeTotals))
  );
}
