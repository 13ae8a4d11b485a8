// The comparison benchmark (`npm run bench`): on this machine, on loopback
// only, in one run, the same HTTP load sent straight to the app and through
// four two-hop mutual-TLS 1.3 paths built with Palisade, HAProxy (TCP mode),
// stunnel and nginx's stream module, each path a client-side and a
// server-side proxy. Per path: keep-alive req/s and latency percentiles, req/s
// with a new connection per request, bulk MB/s, and the proxies' CPU and
// memory, each also as a ratio to direct and to HAProxy. Then Palisade's own
// figures: CA signings per second over gRPC, revocation fan-out to 200
// watchers, agent start to ready, agent memory idle and with 1,000 open
// connections. Prints tables, writes JSON and an SVG chart of the latencies.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { readAdminCredential } from '../../certs/ca-dir.js';
import type { CaClient } from '../../certs/client/index.js';
import { workloadId } from '../../certs/spiffe-id.js';
import { holdConnections, measureStartToReady } from './lib/agent-footprint.js';
import {
  BENCH_NAMESPACE,
  CA_PASSPHRASE,
  CLIENT_ID,
  SERVER_ID,
  TRUST_DOMAIN,
  startBenchMesh,
  type BenchMesh,
} from './lib/bench-mesh.js';
import { machineInfo } from './lib/bench-report.js';
import { FANOUT_STREAMS, caClient, measureFanout, measureSigning } from './lib/ca-figures.js';
import { runBulkTransfer } from './lib/bulk-transfer.js';
import {
  formatCompareReport,
  formatMarkdownTable,
  renderCompareChart,
} from './lib/compare-format.js';
import {
  checkTargets,
  fileStamp,
  headlineOf,
  ratioOf,
  writeCompareReportJson,
  type CompareReport,
  type Headline,
  type MeteredWindow,
  type PalisadeExtras,
  type PathFigures,
  type PathName,
  type SkippedPath,
} from './lib/compare-report.js';
import { parseCompareSettings, USAGE, type CompareSettings } from './lib/compare-settings.js';
import { PEER_NAMES, type PeerName } from './lib/peer-configs.js';
import { issuePeerCert } from './lib/peer-pki.js';
import { ensureTool, haproxyDefaultThreads, startPeerPair } from './lib/peer-proxies.js';
import { openProxyWindow } from './lib/proxy-meter.js';
import { probeMutualTls } from './lib/tls-probe.js';
import { runWrk, type WrkResult } from './lib/wrk-load.js';

/** Where results go: test/bench/results/ in the source tree. */
const RESULTS_DIR = fileURLToPath(new URL('../../../test/bench/results/', import.meta.url));

/** The chart the README embeds, overwritten by every run. */
const LATEST_CHART = 'compare-latency-latest.svg';

/** Time the agents get after `agent.ready` before their idle memory is read, in ms. */
const SETTLE_MS = 1000;

/** Open connections held through the agent pair for the memory figure, and how many open at once. */
const HELD_CONNECTIONS = 1000;
const HELD_CONCURRENCY = 50;

/** Size of the unmeasured bulk transfer before each measured one, in bytes. */
const BULK_WARMUP_BYTES = 16 * 1024 * 1024;

/** Where one path's load goes, and which processes are its proxies. */
interface Route {
  path: PathName;
  address: string;
  proxyPids: number[];
  /** The server-side proxy's TLS address, probed before the load. */
  tlsAddress?: string;
}

/** When the run started, for the elapsed time on each progress line. */
const RUN_STARTED_MS = performance.now();

/** Prints a progress line with the seconds elapsed since the start. */
const log = (line: string) => {
  const elapsedSeconds = Math.round((performance.now() - RUN_STARTED_MS) / 1000);
  process.stdout.write(`[${elapsedSeconds} s] ${line}\n`);
};

await main();

async function main(): Promise<void> {
  const settings = parseCompareSettings(process.argv.slice(2));
  if (!settings) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const startedAt = new Date().toISOString();
  const startedMs = performance.now();
  const loadAtStart = loadavg();
  const machine = machineInfo();
  log(
    `machine: ${machine.cpuModel}, ${machine.cores} cores; load average ${loadAtStart.map((n) => n.toFixed(2)).join(' ')}`,
  );

  const tools: Record<string, string> = {};
  const wrk = ensureTool('wrk', log);
  if (!wrk.ok) throw new Error(`wrk is needed: ${wrk.reason}`);
  tools.wrk = wrk.version;
  const skipped: SkippedPath[] = [];
  const peers: PeerName[] = [];
  for (const peer of PEER_NAMES) {
    if (!settings.paths.includes(peer)) continue;
    const check = ensureTool(peer, log);
    if (check.ok) {
      peers.push(peer);
      tools[peer] = check.version;
    } else {
      skipped.push({ path: peer, reason: check.reason });
      log(`skipping ${peer}: ${check.reason}`);
    }
  }

  const workDir = mkdtempSync(join(tmpdir(), 'palisade-compare-'));
  // On a signal, leave through process.exit so the 'exit' hooks kill every child.
  const exitOnSignal = (status: number) => () => {
    rmSync(workDir, { recursive: true, force: true });
    process.exit(status);
  };
  process.once('SIGINT', exitOnSignal(130));
  process.once('SIGTERM', exitOnSignal(143));
  const stops: (() => Promise<void>)[] = [];
  const clients: CaClient[] = [];
  try {
    log('starting the CA, the app server and two agents...');
    const mesh = await startBenchMesh({ workDir, stops });
    const adminOf = () => {
      const admin = readAdminCredential(mesh.caDir);
      return caClient(mesh, { keyPem: admin.keyPem, certChainPem: admin.certPem });
    };
    const admin = adminOf();
    clients.push(admin);
    const isPalisade = settings.paths.includes('palisade');
    const extras: PalisadeExtras = {};

    await sleep(SETTLE_MS);
    const idleRssBytes = { a: mesh.agents.a.status().rssBytes, b: mesh.agents.b.status().rssBytes };
    if (isPalisade) {
      log(`opening ${HELD_CONNECTIONS} keep-alive connections through the agent pair...`);
      const held = await holdConnections(mesh.meshAddress, HELD_CONNECTIONS, HELD_CONCURRENCY);
      const rssBytes = { a: mesh.agents.a.status().rssBytes, b: mesh.agents.b.status().rssBytes };
      held.close();
      extras.memory = {
        idleRssBytes,
        held: { count: held.count, openMs: held.openMs, rssBytes },
        peakRssBytes: { a: 0, b: 0 },
      };
    }

    const certDir = join(workDir, 'peer-certs');
    mkdirSync(certDir);
    const peerCa = { caDir: mesh.caDir, passphrase: CA_PASSPHRASE };
    const clientCert = await issuePeerCert(peerCa, certDir, 'client.bench.local', CLIENT_ID);
    const serverCert = await issuePeerCert(peerCa, certDir, 'server.bench.local', SERVER_ID);
    const routes: Route[] = [{ path: 'direct', address: mesh.app.address, proxyPids: [] }];
    if (isPalisade) {
      routes.push({
        path: 'palisade',
        address: mesh.meshAddress,
        proxyPids: [mesh.agents.a.pid, mesh.agents.b.pid],
        tlsAddress: mesh.agents.b.inboundAddress,
      });
    }
    for (const peer of peers) {
      log(`starting ${peer} (client side and server side)...`);
      try {
        const pair = await startPeerPair(peer, {
          workDir,
          appAddress: mesh.app.address,
          clientCert,
          serverCert,
          stops,
        });
        routes.push({
          path: peer,
          address: pair.address,
          proxyPids: pair.pids,
          tlsAddress: pair.tlsAddress,
        });
      } catch (err) {
        skipped.push({
          path: peer,
          reason: (err as Error).message.split('\n')[0] ?? 'failed to start',
        });
        log(`skipping ${peer}: ${(err as Error).message}`);
      }
    }

    const figures = new Map<PathName, PathFigures>(routes.map((r) => [r.path, { path: r.path }]));
    for (const route of routes) {
      if (!route.tlsAddress) continue;
      const probe = await probeMutualTls(route.tlsAddress, clientCert);
      (figures.get(route.path) as PathFigures).probe = probe;
    }
    for (const scenario of ['keep-alive', 'new-connection', 'bulk'] as const) {
      for (const route of routes) {
        log(`running ${scenario} ${route.path}...`);
        const target = figures.get(route.path) as PathFigures;
        if (scenario === 'bulk') target.bulk = await bulkWindow(settings, route, mesh);
        else if (scenario === 'keep-alive')
          target.keepAlive = await wrkWindow(settings, route, mesh, false);
        else target.newConnection = await wrkWindow(settings, route, mesh, true);
      }
    }

    if (isPalisade) {
      log('running CA signings over gRPC...');
      extras.signing = await measureSigning(settings, adminOf, clients);
      log(`running revocation fan-out to ${FANOUT_STREAMS} watchers...`);
      extras.fanout = await measureFanout(settings, mesh, admin, clients);
      log(`timing agent start to ready (${settings.startupRuns} runs)...`);
      extras.startup = await measureStartToReady({
        runs: settings.startupRuns,
        admin,
        caFlags: ['--ca-addr', mesh.ca.address, '--ca-bundle', join(mesh.caDir, 'bundle.pem')],
        appAddress: mesh.app.address,
        makeId: (run) => workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, `startup-${run}`),
      });
      if (extras.memory) {
        extras.memory.peakRssBytes = {
          a: mesh.agents.a.status().peakRssBytes,
          b: mesh.agents.b.status().peakRssBytes,
        };
      }
    }

    const paths = routes.map((r) => figures.get(r.path) as PathFigures);
    const headlines: Partial<Record<PathName, Headline>> = {};
    for (const p of paths) headlines[p.path] = headlineOf(p);
    const toDirect: Partial<Record<PathName, Headline>> = {};
    const toHaproxy: Partial<Record<PathName, Headline>> = {};
    for (const p of paths) {
      toDirect[p.path] = ratioOf(headlines[p.path] ?? {}, headlines.direct);
      toHaproxy[p.path] = ratioOf(headlines[p.path] ?? {}, headlines.haproxy);
    }
    const report: CompareReport = {
      startedAt,
      wallSeconds: Math.round((performance.now() - startedMs) / 1000),
      machine,
      loadAverage: { atStart: loadAtStart, atEnd: loadavg() },
      settings: { ...settings },
      tools,
      peerDefaults: peerDefaults(peers, isPalisade),
      skipped,
      paths,
      headlines,
      ratios: { toDirect, toHaproxy },
      palisade: extras,
      targets: isPalisade ? checkTargets(headlines, extras) : [],
    };
    process.stdout.write(`\n${formatCompareReport(report)}\n`);
    process.stdout.write(
      `README table (Markdown; ratios to HAProxy in brackets):\n\n${formatMarkdownTable(report)}\n`,
    );
    const jsonPath = writeCompareReportJson(RESULTS_DIR, report);
    const chartPath = join(RESULTS_DIR, `compare-latency-${fileStamp(startedAt)}.svg`);
    writeFileSync(chartPath, renderCompareChart(report));
    copyFileSync(chartPath, join(RESULTS_DIR, LATEST_CHART));
    log(`wrote ${jsonPath}\nwrote ${chartPath} (and ${LATEST_CHART})`);
    log(`total ${report.wallSeconds} s`);
  } finally {
    for (const client of clients) client.close();
    await Promise.all(stops.map((stop) => stop()));
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** An unmeasured wrk warm-up, then one measured wrk window with the proxies metered. */
async function wrkWindow(
  settings: CompareSettings,
  route: Route,
  mesh: BenchMesh,
  isNewConnectionPerRequest: boolean,
): Promise<{ load: WrkResult; meter: MeteredWindow }> {
  const options = {
    url: `http://${route.address}/`,
    connections: settings.connections,
    threads: settings.threads,
    isNewConnectionPerRequest,
  };
  await runWrk({ ...options, durationSeconds: settings.warmupSeconds });
  const window = openProxyWindow(route.proxyPids, mesh.app.pid);
  const load = await runWrk({ ...options, durationSeconds: settings.durationSeconds });
  return { load, meter: window.finish(load.wrkCpuSeconds) };
}

/** A small unmeasured transfer, then one measured bulk transfer on a new connection. */
async function bulkWindow(settings: CompareSettings, route: Route, mesh: BenchMesh) {
  await runBulkTransfer(route.address, BULK_WARMUP_BYTES);
  const window = openProxyWindow(route.proxyPids, mesh.app.pid);
  const result = await runBulkTransfer(route.address, settings.bulkMib * 1024 * 1024);
  return { result, meter: window.finish() };
}

/** How each peer runs, for the table's footnote. */
function peerDefaults(peers: readonly PeerName[], isPalisade: boolean): Record<string, string> {
  const cores = cpus().length;
  const notes: Record<string, string> = {};
  if (isPalisade) notes.palisade = `one Node ${process.version} process per agent`;
  if (peers.includes('haproxy')) {
    notes.haproxy = `nbthread unset: ${haproxyDefaultThreads() ?? 'one per core'} threads per instance`;
  }
  if (peers.includes('stunnel'))
    notes.stunnel = 'one process per instance, a thread per connection (Debian build)';
  if (peers.includes('nginx'))
    notes.nginx = `worker_processes auto: a master and ${cores} workers per instance`;
  return notes;
}
