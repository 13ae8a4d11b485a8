// The CA benchmark (`npm run bench:ca`): certificates signed per second
// through the real gRPC API (admin Issue and workload Sign by renewal, P-256
// and RSA-2048 leaf keys) and revocation fan-out to 200 WatchTrust streams,
// each against the CA running as its own process on 127.0.0.1.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readAdminCredential } from '../../certs/ca-dir.js';
import { CaClient } from '../../certs/client/index.js';
import { workloadId } from '../../certs/spiffe-id.js';
import { createCsr, generateKeyPair, type KeyPair, type KeyType } from '../../certs/x509/index.js';
import { makeCaDir, TEST_PASSPHRASE, type TestCaDir } from '../helpers/ca-fixture.js';
import {
  formatReport,
  machineInfo,
  writeReportJson,
  type BenchReport,
  type FanoutFigures,
  type SigningFigures,
} from './lib/bench-report.js';
import { readMachineBusySeconds, startCaProcess, type CaProcess } from './lib/ca-process.js';
import { summarizeCpuProfileDir } from './lib/cpu-profile.js';
import { round } from './lib/latency-summary.js';
import { runSigningLoad } from './lib/signing-load.js';
import { measureRevocationFanout } from './lib/trust-fanout.js';

/** Where the JSON results go: test/bench/results/ in the source tree. */
const RESULTS_DIR = fileURLToPath(new URL('../../../test/bench/results/', import.meta.url));

const TRUST_DOMAIN = 'bench.local';
const BENCH_NAMESPACE = 'bench';

/** Lifetime asked for every leaf, in seconds. */
const LEAF_TTL_SECONDS = 3600;

/** Leaf keys made before timing; RSA keys are slow to make, so that pool is small. */
const KEY_POOL_SIZES: Record<KeyType, number> = { 'ecdsa-p256': 64, 'rsa-2048': 32 };

/** Signings per second the issue asks for, by leaf key type. */
const TARGET_SIGNINGS_PER_SECOND: Record<KeyType, number> = {
  'ecdsa-p256': 1500,
  'rsa-2048': 700,
};

/** Fan-out shape and target: 200 streams over 20 channels, 20 revocations 100 ms apart. */
const FANOUT_STREAMS = 200;
const FANOUT_WATCHER_CLIENTS = 20;
const FANOUT_REVOCATIONS = 20;
const FANOUT_INTERVAL_MS = 100;
const FANOUT_TARGET_P99_MS = 100;

/** Profile entries kept per scenario in the JSON report. */
const PROFILE_ENTRIES = 25;

/** Defaults, and the shorter ones of `--quick`. */
const DEFAULT_DURATION_MS = 5000;
const DEFAULT_WARMUP_MS = 1000;
const QUICK_DURATION_MS = 1500;
const QUICK_WARMUP_MS = 500;
const DEFAULT_CLIENTS = 4;
const DEFAULT_IN_FLIGHT = 32;

const USAGE = `usage: node dist/test/bench/ca-bench.js [options]
  --duration-ms <n>   measurement window per signing scenario (default ${DEFAULT_DURATION_MS})
  --warmup-ms <n>     warm-up before each window (default ${DEFAULT_WARMUP_MS})
  --clients <n>       CaClient instances (channels) per signing scenario (default ${DEFAULT_CLIENTS})
  --in-flight <n>     calls in flight per client (default ${DEFAULT_IN_FLIGHT})
  --quick             ${QUICK_DURATION_MS} ms windows after ${QUICK_WARMUP_MS} ms warm-ups
  --profile           run the CA under node --cpu-prof and print its top self-time functions
Linux only: CA CPU and memory are read from /proc.`;

/** The bench's settings, from its command line. */
interface BenchSettings {
  durationMs: number;
  warmupMs: number;
  clients: number;
  inFlightPerClient: number;
  isProfiling: boolean;
}

/** One signing scenario: which RPC, which leaf key type. */
interface SigningScenario {
  rpc: 'Issue' | 'Sign';
  keyType: KeyType;
}

const SIGNING_SCENARIOS: readonly SigningScenario[] = [
  { rpc: 'Issue', keyType: 'ecdsa-p256' },
  { rpc: 'Issue', keyType: 'rsa-2048' },
  { rpc: 'Sign', keyType: 'ecdsa-p256' },
  { rpc: 'Sign', keyType: 'rsa-2048' },
];

/** What every scenario shares: the CA directory and the pre-made leaf keys. */
interface BenchContext {
  settings: BenchSettings;
  caDir: TestCaDir;
  keys: Record<KeyType, KeyPair[]>;
}

await main();

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  process.stdout.write('making leaf keys and the CA directory...\n');
  const keys = {
    'ecdsa-p256': await makeKeys('ecdsa-p256'),
    'rsa-2048': await makeKeys('rsa-2048'),
  };
  const caDir = makeCaDir(TRUST_DOMAIN);
  try {
    const context: BenchContext = { settings, caDir, keys };
    const signing: SigningFigures[] = [];
    for (const scenario of SIGNING_SCENARIOS) {
      process.stdout.write(`running ${scenarioName(scenario)}...\n`);
      signing.push(await runSigningScenario(context, scenario));
    }
    process.stdout.write('running WatchTrust fan-out...\n');
    const fanout = await runFanoutScenario(context);
    const report: BenchReport = {
      startedAt,
      machine: machineInfo(),
      settings: { ...settings, leafTtlSeconds: LEAF_TTL_SECONDS, keyPoolSizes: KEY_POOL_SIZES },
      signing,
      fanout,
    };
    process.stdout.write(`\n${formatReport(report)}`);
    process.stdout.write(`\nwrote ${writeReportJson(RESULTS_DIR, report)}\n`);
  } finally {
    caDir.remove();
  }
}

/** Runs one signing scenario against a fresh CA process and reads its resource use. */
async function runSigningScenario(
  context: BenchContext,
  scenario: SigningScenario,
): Promise<SigningFigures> {
  const { settings } = context;
  const keys = context.keys[scenario.keyType];
  const name = scenarioName(scenario);
  const profileDir = settings.isProfiling ? mkdtempSync(join(tmpdir(), 'palisade-prof-')) : '';
  const clients: CaClient[] = [];
  let figures: Omit<SigningFigures, 'profile'>;
  const ca = await startBenchCa(context, profileDir);
  try {
    const admin = adminClient(context, ca);
    clients.push(admin);
    await admin.status();
    const ids: string[] = [];
    const csrs: string[][] = [];
    const callers: CaClient[] = [];
    for (let c = 0; c < settings.clients; c++) {
      const spiffeId = workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, `${name}-${c}`);
      ids.push(spiffeId);
      csrs.push(keys.map((key) => createCsr({ key, spiffeId })));
      const caller =
        scenario.rpc === 'Issue'
          ? adminClient(context, ca)
          : await renewingClient(context, ca, admin, keys[0] as KeyPair, spiffeId);
      clients.push(caller);
      callers.push(caller);
    }
    const call = (c: number, k: number) => {
      const clientCsrs = csrs[c] as string[];
      const csrPem = clientCsrs[k % clientCsrs.length] as string;
      const caller = callers[c] as CaClient;
      return scenario.rpc === 'Issue'
        ? caller.issue({ spiffeId: ids[c] as string, csrPem, ttlSeconds: LEAF_TTL_SECONDS })
        : caller.sign({ csrPem, renewal: true, ttlSeconds: LEAF_TTL_SECONDS });
    };

    let caBefore = ca.usage();
    let benchBefore = process.cpuUsage();
    let machineBefore = readMachineBusySeconds();
    let caAfter = caBefore;
    let benchAfter = benchBefore;
    let machineAfter = machineBefore;
    const load = await runSigningLoad({
      clientCount: settings.clients,
      inFlightPerClient: settings.inFlightPerClient,
      warmupMs: settings.warmupMs,
      durationMs: settings.durationMs,
      call,
      onWindowStart: () => {
        caBefore = ca.usage();
        benchBefore = process.cpuUsage();
        machineBefore = readMachineBusySeconds();
      },
      onWindowEnd: () => {
        caAfter = ca.usage();
        benchAfter = process.cpuUsage(benchBefore);
        machineAfter = readMachineBusySeconds();
      },
    });
    const caCpuSeconds = caAfter.cpuSeconds - caBefore.cpuSeconds;
    const benchCpuSeconds = (benchAfter.user + benchAfter.system) / 1e6;
    const othersCpuSeconds = machineAfter - machineBefore - caCpuSeconds - benchCpuSeconds;
    const percentOfWindow = (seconds: number) => Math.round((seconds * 100_000) / load.windowMs);
    const target = TARGET_SIGNINGS_PER_SECOND[scenario.keyType];
    figures = {
      scenario: name,
      rpc: scenario.rpc,
      keyType: scenario.keyType,
      clients: settings.clients,
      inFlightPerClient: settings.inFlightPerClient,
      targetPerSecond: target,
      isBelowTarget: load.signingsPerSecond < target,
      load,
      resources: {
        caCpuSeconds: round(caCpuSeconds),
        caCpuPercent: percentOfWindow(caCpuSeconds),
        caCpuMsPerSigning: round((caCpuSeconds * 1000) / Math.max(1, load.completed)),
        caPeakRssBytes: ca.usage().peakRssBytes,
        benchCpuPercent: percentOfWindow(benchCpuSeconds),
        othersCpuPercent: Math.max(0, percentOfWindow(othersCpuSeconds)),
      },
    };
  } finally {
    for (const client of clients) client.close();
    await ca.stop();
  }
  if (!profileDir) return figures;
  try {
    return { ...figures, profile: summarizeCpuProfileDir(profileDir, PROFILE_ENTRIES) };
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }
}

/** Opens 200 WatchTrust streams and times 20 revocations reaching each of them. */
async function runFanoutScenario(context: BenchContext): Promise<FanoutFigures> {
  const ca = await startBenchCa(context, '');
  const clients: CaClient[] = [];
  try {
    const admin = adminClient(context, ca);
    clients.push(admin);
    const key = context.keys['ecdsa-p256'][0] as KeyPair;
    const serials: string[] = [];
    for (let i = 0; i < FANOUT_REVOCATIONS; i++) {
      const spiffeId = workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, `revoked-${i}`);
      const signed = await admin.issue({
        spiffeId,
        csrPem: createCsr({ key, spiffeId }),
        ttlSeconds: LEAF_TTL_SECONDS,
      });
      serials.push(signed.serial);
    }
    const watchers: CaClient[] = [];
    for (let i = 0; i < FANOUT_WATCHER_CLIENTS; i++) watchers.push(client(context, ca));
    clients.push(...watchers);

    const caBefore = ca.usage();
    const startedMs = Date.now();
    const result = await measureRevocationFanout({
      watchers,
      streamCount: FANOUT_STREAMS,
      admin,
      serials,
      intervalMs: FANOUT_INTERVAL_MS,
    });
    const caAfter = ca.usage();
    const caCpuSeconds = caAfter.cpuSeconds - caBefore.cpuSeconds;
    return {
      watcherClients: FANOUT_WATCHER_CLIENTS,
      targetP99Ms: FANOUT_TARGET_P99_MS,
      isBelowTarget:
        result.missingArrivals > 0 ||
        result.streamErrors > 0 ||
        result.arrival.p99Ms > FANOUT_TARGET_P99_MS,
      result,
      resources: {
        caCpuSeconds: round(caCpuSeconds),
        caCpuPercent: Math.round((caCpuSeconds * 100_000) / (Date.now() - startedMs)),
        caPeakRssBytes: caAfter.peakRssBytes,
      },
    };
  } finally {
    for (const c of clients) c.close();
    await ca.stop();
  }
}

function startBenchCa(context: BenchContext, cpuProfileDir: string): Promise<CaProcess> {
  return startCaProcess({
    dir: context.caDir.dir,
    passphrase: TEST_PASSPHRASE,
    ...(cpuProfileDir ? { cpuProfileDir } : {}),
  });
}

/** A client without a client certificate: enough for WatchTrust. */
function client(
  context: BenchContext,
  ca: CaProcess,
  credential?: { keyPem: string; certChainPem: string },
): CaClient {
  return new CaClient({
    address: ca.address,
    trustBundlePem: readAdminCredential(context.caDir.dir).bundlePem,
    trustDomain: TRUST_DOMAIN,
    ...(credential ? { credential } : {}),
  });
}

/** A client presenting the CA directory's admin certificate. */
function adminClient(context: BenchContext, ca: CaProcess): CaClient {
  const admin = readAdminCredential(context.caDir.dir);
  return client(context, ca, { keyPem: admin.keyPem, certChainPem: admin.certPem });
}

/** A client holding a certificate for `spiffeId` (issued by the admin), so it may renew. */
async function renewingClient(
  context: BenchContext,
  ca: CaProcess,
  admin: CaClient,
  key: KeyPair,
  spiffeId: string,
): Promise<CaClient> {
  const signed = await admin.issue({
    spiffeId,
    csrPem: createCsr({ key, spiffeId }),
    ttlSeconds: LEAF_TTL_SECONDS,
  });
  const keyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return client(context, ca, { keyPem, certChainPem: signed.certChainPem.join('') });
}

function scenarioName(scenario: SigningScenario): string {
  return `${scenario.rpc.toLowerCase()}-${scenario.keyType}`;
}

async function makeKeys(type: KeyType): Promise<KeyPair[]> {
  return Promise.all(Array.from({ length: KEY_POOL_SIZES[type] }, () => generateKeyPair(type)));
}

function parseSettings(argv: string[]): BenchSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      'duration-ms': { type: 'string' },
      'warmup-ms': { type: 'string' },
      clients: { type: 'string' },
      'in-flight': { type: 'string' },
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const count = (flag: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
    return n;
  };
  return {
    durationMs: count(
      'duration-ms',
      values['duration-ms'],
      values.quick ? QUICK_DURATION_MS : DEFAULT_DURATION_MS,
    ),
    warmupMs: count(
      'warmup-ms',
      values['warmup-ms'],
      values.quick ? QUICK_WARMUP_MS : DEFAULT_WARMUP_MS,
    ),
    clients: count('clients', values.clients, DEFAULT_CLIENTS),
    inFlightPerClient: count('in-flight', values['in-flight'], DEFAULT_IN_FLIGHT),
    isProfiling: values.profile,
  };
}
