// The data-path benchmark (`npm run bench:agent`): HTTP requests per second
// (keep-alive and a new connection per request), their p50 and p99 latency,
// and bulk throughput over the two-hop mesh path, app client -> agent A
// (explicit upstream) -> mutual TLS 1.3 -> agent B -> app server, each beside
// the same load sent straight to the app server; plus agent memory and CPU.
// The `http-authz` scenario sends keep-alive requests with a bearer token
// straight, through the plain TCP mesh, and through agent B' in HTTP mode,
// which verifies the token (ES256, JWKS file) and a scope on every request.
// The CA, the agents and the app server run as their own processes on
// 127.0.0.1; wrk makes the request load.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BUSY_MACHINE_PERCENT,
  SCENARIO_PATHS,
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
const SCENARIOS: readonly ScenarioKind[] = ['keep-alive', 'new-connection', 'http-authz', 'bulk'];

/** How long the HTTP-mode probe requests may take, in ms. */
const PROBE_TIMEOUT_MS = 5_000;

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
  --scenario <list>   comma list of keep-alive, new-connection, http-authz, bulk (default: all)
                      http-authz: keep-alive with a bearer token, direct, plain TCP mesh and
                      through agent B' in HTTP mode checking the token and a scope
  --profile           run the agents under node --cpu-prof and print their top self-time functions
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
  const isHttpPathWanted = settings.scenarios.includes('http-authz');
  const profileDirs = settings.isProfiling
    ? {
        a: join(workDir, 'profile-a'),
        b: join(workDir, 'profile-b'),
        ...(isHttpPathWanted ? { bHttp: join(workDir, 'profile-b-http') } : {}),
      }
    : undefined;
  const stops: (() => Promise<void>)[] = [];
  try {
    process.stdout.write(
      `starting the CA, the app server and ${isHttpPathWanted ? 'three' : 'two'} agents...\n`,
    );
    const mesh = await startBenchMesh({
      workDir,
      stops,
      isHttpPathWanted,
      ...(profileDirs ? { profileDirs } : {}),
    });
    await sleep(SETTLE_MS);
    const idle = { a: mesh.agents.a.status(), b: mesh.agents.b.status() };
    const idleHttp = mesh.http?.agent.status();
    const loadRssMax = { a: 0, b: 0, bHttp: 0 };
    if (mesh.http) await probeHttpPath(mesh.http.meshAddress, mesh.http.token);

    const scenarios: ScenarioFigures[] = [];
    for (const scenario of settings.scenarios) {
      for (const path of SCENARIO_PATHS[scenario]) {
        process.stdout.write(`running ${scenario} ${path}...\n`);
        const figures = await runScenario(settings, mesh, scenario, path);
        scenarios.push(figures);
        if (path === 'direct') continue;
        for (const attempt of figures.attempts) {
          const rss = attempt.resources.agentRssMaxBytes;
          loadRssMax.a = Math.max(loadRssMax.a, rss.a);
          if (path === 'mesh') loadRssMax.b = Math.max(loadRssMax.b, rss.b);
          else loadRssMax.bHttp = Math.max(loadRssMax.bHttp, rss.b);
        }
      }
    }

    const end = { a: mesh.agents.a.status(), b: mesh.agents.b.status() };
    const endHttp = mesh.http?.agent.status();
    const agents: AgentFootprint = {
      idleRssBytes: { a: idle.a.rssBytes, b: idle.b.rssBytes },
      loadRssMaxBytes: { a: loadRssMax.a, b: loadRssMax.b },
      peakRssBytes: { a: end.a.peakRssBytes, b: end.b.peakRssBytes },
      totalCpuSeconds: { a: round(end.a.cpuSeconds), b: round(end.b.cpuSeconds) },
      ...(idleHttp && endHttp
        ? {
            bHttp: {
              idleRssBytes: idleHttp.rssBytes,
              loadRssMaxBytes: loadRssMax.bHttp,
              peakRssBytes: endHttp.peakRssBytes,
              totalCpuSeconds: round(endHttp.cpuSeconds),
            },
          }
        : {}),
    };
    // Stopped before the profiles are read: each writes its profile as it exits.
    await Promise.all([
      mesh.agents.a.stop(),
      mesh.agents.b.stop(),
      ...(mesh.http ? [mesh.http.agent.stop()] : []),
    ]);
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
              ...(profileDirs.bHttp
                ? { bHttp: summarizeCpuProfileDir(profileDirs.bHttp, PROFILE_ENTRIES) }
                : {}),
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
  const route = routeOf(mesh, path);
  const headers =
    scenario === 'http-authz' ? [`Authorization: Bearer ${httpPathOf(mesh).token}`] : [];
  const attempts: WindowFigures[] = [];
  for (let attempt = 0; attempt <= settings.retries; attempt++) {
    const figures =
      scenario === 'bulk'
        ? await bulkWindow(settings, route)
        : await wrkWindow(settings, route, scenario === 'new-connection', headers);
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

/** Where one path's load goes and which processes its window is charged to. */
interface Route {
  address: string;
  pids: MeteredPids;
}

/** The address of `path` and its processes; on `mesh-http`, agent B' stands as agent B. */
function routeOf(mesh: BenchMesh, path: PathKind): Route {
  const a = mesh.agents.a.pid;
  const app = mesh.app.pid;
  switch (path) {
    case 'direct':
      return { address: mesh.app.address, pids: { agents: { a, b: mesh.agents.b.pid }, app } };
    case 'mesh':
      return { address: mesh.meshAddress, pids: { agents: { a, b: mesh.agents.b.pid }, app } };
    case 'mesh-http': {
      const http = httpPathOf(mesh);
      return { address: http.meshAddress, pids: { agents: { a, b: http.agent.pid }, app } };
    }
  }
}

function httpPathOf(mesh: BenchMesh): NonNullable<BenchMesh['http']> {
  if (!mesh.http) throw new Error('the HTTP-mode agent was not started');
  return mesh.http;
}

/**
 * Checks that agent B' really judges requests before any load: with the
 * token the app answers 200, without one B' answers 401.
 */
async function probeHttpPath(address: string, token: string): Promise<void> {
  const statusOf = async (headers: Record<string, string>) => {
    const response = await fetch(`http://${address}/`, {
      headers,
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    await response.arrayBuffer();
    return response.status;
  };
  const withToken = await statusOf({ authorization: `Bearer ${token}` });
  const withoutToken = await statusOf({});
  if (withToken !== 200 || withoutToken !== 401) {
    throw new Error(
      `agent B' answered ${withToken} with the token and ${withoutToken} without; ` +
        'expected 200 and 401',
    );
  }
}

/** An unmeasured wrk warm-up, then one measured wrk window. */
async function wrkWindow(
  settings: BenchSettings,
  route: Route,
  isNewConnectionPerRequest: boolean,
  headers: readonly string[],
): Promise<WindowFigures> {
  const options = {
    url: `http://${route.address}/`,
    connections: settings.connections,
    threads: settings.threads,
    isNewConnectionPerRequest,
    headers,
  };
  await runWrk({ ...options, durationSeconds: settings.warmupSeconds });
  const window = openWindow(route.pids);
  const load = await runWrk({ ...options, durationSeconds: settings.durationSeconds });
  const resources = window.finish({
    units: load.requests,
    loadProcessCpuSeconds: load.wrkCpuSeconds,
  });
  return { load, resources };
}

/** A small unmeasured transfer, then one measured bulk transfer on a new connection. */
async function bulkWindow(settings: BenchSettings, route: Route): Promise<WindowFigures> {
  const bytes = settings.bulkMib * 1024 * 1024;
  await runBulkTransfer(route.address, BULK_WARMUP_BYTES);
  const window = openWindow(route.pids);
  const bulk = await runBulkTransfer(route.address, bytes);
  return { bulk, resources: window.finish({ units: bytes / 1e6 }) };
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
