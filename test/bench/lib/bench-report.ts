// Renders the CA benchmark's figures as text tables for the terminal and
// writes them, with the machine they came from, as JSON.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { formatTable } from '../../../agent/cli/output.js';
import type { ProfileSummary } from './cpu-profile.js';
import type { SigningLoadResult } from './signing-load.js';
import type { FanoutResult } from './trust-fanout.js';

/** How many profile entries the terminal report shows per scenario. */
const PRINTED_PROFILE_ENTRIES = 12;

/** Above this much CPU used by other processes (% of one core), a window's figures are suspect. */
const BUSY_MACHINE_PERCENT = 20;

/** Bytes in a mebibyte, for memory figures. */
const MIB = 1024 * 1024;

/** Where the figures were measured. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  node: string;
  os: string;
  totalMemoryBytes: number;
}

/** Resource use of the CA process over a measurement. */
export interface CaResourceUse {
  caCpuSeconds: number;
  /** CA CPU time over wall time, in percent of one core. */
  caCpuPercent: number;
  caPeakRssBytes: number;
}

/** Resource use around a signing window, including the bench's and everyone else's. */
export interface ResourceUse extends CaResourceUse {
  /** CA CPU time per successful signing, in ms: the figure least moved by a busy machine. */
  caCpuMsPerSigning: number;
  benchCpuPercent: number;
  /** CPU the rest of the machine used during the window, in percent of one core. */
  othersCpuPercent: number;
}

/** One signing scenario: what ran, what it measured, against which target. */
export interface SigningFigures {
  scenario: string;
  rpc: 'Issue' | 'Sign';
  keyType: string;
  clients: number;
  inFlightPerClient: number;
  targetPerSecond: number;
  isBelowTarget: boolean;
  load: SigningLoadResult;
  resources: ResourceUse;
  profile?: ProfileSummary;
}

/** The fan-out scenario with its target. */
export interface FanoutFigures {
  watcherClients: number;
  targetP99Ms: number;
  isBelowTarget: boolean;
  result: FanoutResult;
  resources: CaResourceUse;
}

/** Everything one bench run produced. */
export interface BenchReport {
  startedAt: string;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  signing: SigningFigures[];
  fanout: FanoutFigures;
}

/** Describes the machine running the bench. */
export function machineInfo(): MachineInfo {
  const all = cpus();
  return {
    cpuModel: all[0]?.model ?? 'unknown',
    cores: all.length,
    node: process.version,
    os: `${platform()} ${release()}`,
    totalMemoryBytes: totalmem(),
  };
}

/** Renders the whole report as text tables, each figure beside its target. */
export function formatReport(report: BenchReport): string {
  const { machine } = report;
  const header =
    `CA benchmark, ${report.startedAt}\n` +
    `machine: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, ${machine.os}\n\n`;
  const signing = formatTable(
    [
      'scenario',
      'rpc',
      'signings/s',
      'target',
      'p50 ms',
      'p99 ms',
      'errors',
      'CA cpu',
      'CA ms/sign',
      'CA rss',
      'bench cpu',
      'others cpu',
    ],
    report.signing.map((s) => [
      s.scenario,
      s.rpc,
      `${s.load.signingsPerSecond}${s.isBelowTarget ? ' (below target)' : ''}`,
      `>= ${s.targetPerSecond}`,
      String(s.load.latency.p50Ms),
      String(s.load.latency.p99Ms),
      formatErrors(s.load),
      `${s.resources.caCpuSeconds.toFixed(2)} s (${s.resources.caCpuPercent}%)`,
      String(s.resources.caCpuMsPerSigning),
      `${(s.resources.caPeakRssBytes / MIB).toFixed(0)} MiB`,
      `${s.resources.benchCpuPercent}%`,
      `${s.resources.othersCpuPercent}%`,
    ]),
  );
  const busy = report.signing.filter((s) => s.resources.othersCpuPercent > BUSY_MACHINE_PERCENT);
  const busyNote = busy.length
    ? `note: other processes used over ${BUSY_MACHINE_PERCENT}% of a core during ` +
      `${busy.map((s) => s.scenario).join(', ')}; those throughputs understate the CA ` +
      `(CA ms/sign is the steadier figure)\n`
    : '';
  const f = report.fanout;
  const r = f.result;
  const fanout = formatTable(
    ['fan-out', 'value'],
    [
      ['streams / clients', `${r.streams} / ${f.watcherClients}`],
      ['revocations', String(r.revocations)],
      ['arrivals', `${r.expectedArrivals - r.missingArrivals} of ${r.expectedArrivals}`],
      ['stream errors', String(r.streamErrors)],
      ['initial state to all', `${r.initialStateMs} ms`],
      ['arrival p50', `${r.arrival.p50Ms} ms`],
      [
        'arrival p99',
        `${r.arrival.p99Ms} ms (target <= ${f.targetP99Ms} ms)${f.isBelowTarget ? ' below target' : ''}`,
      ],
      ['arrival max', `${r.arrival.maxMs} ms`],
      ['Revoke call p50 / p99', `${r.revokeCall.p50Ms} / ${r.revokeCall.p99Ms} ms`],
      ['CA peak rss', `${(f.resources.caPeakRssBytes / MIB).toFixed(0)} MiB`],
    ],
  );
  const profiles = report.signing
    .filter((s) => s.profile)
    .map((s) => formatProfile(s.scenario, s.profile as ProfileSummary))
    .join('\n');
  return `${header}${signing}${busyNote}\n${fanout}${profiles ? `\n${profiles}` : ''}`;
}

/** Writes the report as `ca-<ISO time>.json` under `dir`; returns the file's path. */
export function writeReportJson(dir: string, report: BenchReport): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `ca-${report.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

function formatErrors(load: SigningLoadResult): string {
  const codes = Object.entries(load.errorCodes).map(([code, n]) => `${code} x${n}`);
  return codes.length ? `${load.errors} (${codes.join(', ')})` : String(load.errors);
}

function formatProfile(scenario: string, profile: ProfileSummary): string {
  const rows = (entries: ProfileSummary['functions']) =>
    entries
      .slice(0, PRINTED_PROFILE_ENTRIES)
      .map((e) => [`${e.selfPercent}%`, `${e.selfMs} ms`, e.name]);
  return (
    `CA profile, ${scenario}: ${profile.totalMs} ms sampled, ${profile.idlePercent}% idle\n` +
    formatTable(['self', 'time', 'function'], rows(profile.functions)) +
    formatTable(['self', 'time', 'module'], rows(profile.modules)) +
    formatTable(['total', 'time', 'palisade function'], rows(profile.palisadeTotals))
  );
}
