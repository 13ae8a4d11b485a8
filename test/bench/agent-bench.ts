// The data-path benchmark (`npm run bench:agent`): HTTP requests per second
// (keep-alive and a new connection per request), their p50 and p99 latency,
// and bulk throughput over the two-hop mesh path, app client -> agent A
// (explicit upstream) -> mutual TLS 1.3 -> agent B -> app server, each beside
// the same load sent straight to the app server; plus agent memory and CPU.
// The CA, both agents and the app server run as their own processes on
// 127.0.0.1; wrk makes the request load.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BUSY_MACHINE_PERCENT,
  formatAgentReport,
  writeAgentReportJson,
  type AgentBenchReport,
  type AgentFootprint,
  type PathKind,
  type ScenarioFigures,
  type ScenarioKind,
  type WindowFigures,
} from './lib/agent-report.js';
import { startBenchMesh, type BenchMesh } from './lib/bench-mesh.js';
import { machineInfo } from './lib/bench-report.js';
import { runBulkTransfer } from './lib/bulk-transfer.js';
import { summarizeCpuProfileDir } from './lib/cpu-profile.js';
import { round } from './lib/latency-summary.js';
import { hasWrk, runWrk } from './lib/wrk-load.js';
import { openWindow, type MeteredPids } from './lib/window-meter.js';

/** Where the JSON results go: test/bench/results/ in the source tree. */
const RESULTS_DIR = fileURLToPath(new URL('../../../test/bench/results/', import.meta.url));

/** Time the agents get after `agent.ready` before their idle memory is read, in ms. */
const SETTLE_MS = 1000;

/** Size of the bulk warm-up transfer, in bytes. */
const BULK_WARMUP_BYTES = 16 * 1024 * 1024;

/** Profile entries kept per agent in the JSON report. */
const PROFILE_ENTRIES = 25;

/** Every scenario, in the order they run. */
const SCENARIOS: readonly ScenarioKind[] = ['keep-alive', 'new-connection', 'bulk'];

/** Defaults, and the shorter ones of `--quick`. */
const DEFAULT_DURATION_SECONDS = 5;
const QUICK_DURATION_SECONDS = 2;
const DEFAULT_WARMUP_SECONDS = 1;
const DEFAULT_CONNECTIONS = 32;
const DEFAULT_THREADS = 1;
const DEFAULT_BULK_MIB = 256;
const DEFAULT_RETRIES = 2;

const USAGE = `usage: node dist/test/bench/agent-bench.js [options]
  --duration <s>      measurement window per scenario, in seconds (default ${DEFAULT_DURATION_SECONDS})
  --warmup <s>        unmeasured wrk run before each window, in seconds (default ${DEFAULT_WARMUP_SECONDS})
  --quick             ${QUICK_DURATION_SECONDS} s windows
  --connections <n>   wrk connections (default ${DEFAULT_CONNECTIONS})
  --threads <n>       wrk threads (default ${DEFAULT_THREADS}; the agents need the other core)
  --bulk-mib <n>      size of the bulk transfer, in MiB (default ${DEFAULT_BULK_MIB})
  --retries <n>       re-runs of a window while other processes use over ${BUSY_MACHINE_PERCENT}% of a core (default ${DEFAULT_RETRIES})
  --scenario <list>   comma list of keep-alive, new-connection, bulk (default: all three)
  --profile           run both agents under node --cpu-prof and print their top self-time functions
Needs wrk on the PATH (Debian: apt-get install -y wrk). Linux only: CPU and memory come from /proc.`;

/** The bench's settings, from its command line. */
interface BenchSettings {
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  threads: number;
  bulkMib: number;
  retries: number;
  scenarios: ScenarioKind[];
  isProfiling: boolean;
}

await main();

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  if (!hasWrk()) {
    throw new Error('wrk is not on the PATH; install it (Debian: apt-get install -y wrk)');
  }
  const startedAt = new Date().toISOString();
  const loadAverageAtStart = loadavg();
  const workDir = mkdtempSync(join(tmpdir(), 'palisade-agent-bench-'));
  // On a signal, leave through process.exit so the 'exit' hooks kill every child.
  const exitOnSignal = (status: number) => () => {
    rmSync(workDir, { recursive: true, force: true });
    process.exit(status);
  };
  process.once('SIGINT', exitOnSignal(130));
  process.once('SIGTERM', exitOnSignal(143));
  const profileDirs = settings.isProfiling
    ? { a: join(workDir, 'profile-a'), b: join(workDir, 'profile-b') }
    : undefined;
  const stops: (() => Promise<void>)[] = [];
  try {
    process.stdout.write('starting the CA, the app server and two agents...\n');
    const mesh = await startBenchMesh({ workDir, stops, ...(profileDirs ? { profileDirs } : {}) });
    await sleep(SETTLE_MS);
    const idle = { a: mesh.agents.a.status(), b: mesh.agents.b.status() };
    const loadRssMax = { a: 0, b: 0 };

    const scenarios: ScenarioFigures[] = [];
    for (const scenario of settings.scenarios) {
      for (const path of ['direct', 'mesh'] as const) {
        process.stdout.write(`running ${scenario} ${path}...\n`);
        const figures = await runScenario(settings, mesh, scenario, path);
        scenarios.push(figures);
        if (path === 'mesh') {
          for (const attempt of figures.attempts) {
            loadRssMax.a = Math.max(loadRssMax.a, attempt.resources.agentRssMaxBytes.a);
            loadRssMax.b = Math.max(loadRssMax.b, attempt.resources.agentRssMaxBytes.b);
          }
        }
      }
    }

    const end = { a: mesh.agents.a.status(), b: mesh.agents.b.status() };
    const agents: AgentFootprint = {
      idleRssBytes: { a: idle.a.rssBytes, b: idle.b.rssBytes },
      loadRssMaxBytes: loadRssMax,
      peakRssBytes: { a: end.a.peakRssBytes, b: end.b.peakRssBytes },
      totalCpuSeconds: { a: round(end.a.cpuSeconds), b: round(end.b.cpuSeconds) },
    };
    await Promise.all([mesh.agents.a.stop(), mesh.agents.b.stop()]);
    const report: AgentBenchReport = {
      startedAt,
      machine: machineInfo(),
      loadAverage: { atStart: loadAverageAtStart, atEnd: loadavg() },
      settings: { ...settings, busyMachinePercent: BUSY_MACHINE_PERCENT },
      scenarios,
      agents,
      ...(profileDirs
        ? {
            profiles: {
              a: summarizeCpuProfileDir(profileDirs.a, PROFILE_ENTRIES),
              b: summarizeCpuProfileDir(profileDirs.b, PROFILE_ENTRIES),
            },
          }
        : {}),
    };
    process.stdout.write(`\n${formatAgentReport(report)}`);
    process.stdout.write(`\nwrote ${writeAgentReportJson(RESULTS_DIR, report)}\n`);
  } finally {
    await Promise.all(stops.map((stop) => stop()));
    rmSync(workDir, { recursive: true, force: true });
  }
}

/**
 * Runs one scenario on one path, again while other processes used more than
 * the busy threshold (up to `settings.retries` times), and reports the
 * attempt where they used the least.
 */
async function runScenario(
  settings: BenchSettings,
  mesh: BenchMesh,
  scenario: ScenarioKind,
  path: PathKind,
): Promise<ScenarioFigures> {
  const address = path === 'direct' ? mesh.app.address : mesh.meshAddress;
  const attempts: WindowFigures[] = [];
  for (let attempt = 0; attempt <= settings.retries; attempt++) {
    const figures =
      scenario === 'bulk'
        ? await bulkWindow(settings, mesh, address)
        : await wrkWindow(settings, mesh, address, scenario === 'new-connection');
    attempts.push(figures);
    const others = figures.resources.othersCpuPercent;
    if (others <= BUSY_MACHINE_PERCENT) break;
    if (attempt < settings.retries) {
      process.stdout.write(`  other processes used ${others}% of a core; running it again\n`);
    }
  }
  const reported = attempts.reduce((best, next) =>
    next.resources.othersCpuPercent < best.resources.othersCpuPercent ? next : best,
  );
  return {
    scenario,
    path,
    reported,
    attempts,
    isBusy: reported.resources.othersCpuPercent > BUSY_MACHINE_PERCENT,
  };
}

/** An unmeasured wrk warm-up, then one measured wrk window. */
async function wrkWindow(
  settings: BenchSettings,
  mesh: BenchMesh,
  address: string,
  isNewConnectionPerRequest: boolean,
): Promise<WindowFigures> {
  const options = {
    url: `http://${address}/`,
    connections: settings.connections,
    threads: settings.threads,
    isNewConnectionPerRequest,
  };
  await runWrk({ ...options, durationSeconds: settings.warmupSeconds });
  const window = openWindow(meteredPids(mesh));
  const load = await runWrk({ ...options, durationSeconds: settings.durationSeconds });
  const resources = window.finish({
    units: load.requests,
    loadProcessCpuSeconds: load.wrkCpuSeconds,
  });
  return { load, resources };
}

/** A small unmeasured transfer, then one measured bulk transfer on a new connection. */
async function bulkWindow(
  settings: BenchSettings,
  mesh: BenchMesh,
  address: string,
): Promise<WindowFigures> {
  const bytes = settings.bulkMib * 1024 * 1024;
  await runBulkTransfer(address, BULK_WARMUP_BYTES);
  const window = openWindow(meteredPids(mesh));
  const bulk = await runBulkTransfer(address, bytes);
  return { bulk, resources: window.finish({ units: bytes / 1e6 }) };
}

function meteredPids(mesh: BenchMesh): MeteredPids {
  return { agents: { a: mesh.agents.a.pid, b: mesh.agents.b.pid }, app: mesh.app.pid };
}

function parseSettings(argv: string[]): BenchSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      quick: { type: 'boolean', default: false },
      connections: { type: 'string' },
      threads: { type: 'string' },
      'bulk-mib': { type: 'string' },
      retries: { type: 'string' },
      scenario: { type: 'string' },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const count = (flag: string, text: string | undefined, fallback: number, min = 1) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer >= ${min}`);
    return n;
  };
  return {
    durationSeconds: count(
      'duration',
      values.duration,
      values.quick ? QUICK_DURATION_SECONDS : DEFAULT_DURATION_SECONDS,
    ),
    warmupSeconds: count('warmup', values.warmup, DEFAULT_WARMUP_SECONDS),
    connections: count('connections', values.connections, DEFAULT_CONNECTIONS),
    threads: count('threads', values.threads, DEFAULT_THREADS),
    bulkMib: count('bulk-mib', values['bulk-mib'], DEFAULT_BULK_MIB),
    retries: count('retries', values.retries, DEFAULT_RETRIES, 0),
    scenarios: parseScenarios(values.scenario),
    isProfiling: values.profile,
  };
}

function parseScenarios(text: string | undefined): ScenarioKind[] {
  if (text === undefined) return [...SCENARIOS];
  const names = text.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(SCENARIOS as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new Error(`--scenario takes a comma list of ${SCENARIOS.join(', ')}`);
  }
  return SCENARIOS.filter((scenario) => names.includes(scenario));
}
