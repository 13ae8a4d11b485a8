// Drives HTTP load with wrk: a fixed number of connections, either kept
// alive or closed after every request (`Connection: close`). A small Lua
// script makes wrk print its figures, and its own CPU time, as one JSON line.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnBenchChild } from './bench-child.js';
import { round } from './latency-summary.js';
import { cpuSecondsOfStat } from './process-status.js';

/** Marks the line of wrk's output the Lua `done` hook writes. */
const RESULT_PREFIX = 'WRK_RESULT ';

/** How long wrk may run past its duration before the bench gives up on it, in ms. */
const OVERRUN_MS = 15_000;

/** Per-request timeout wrk applies; slower answers count as timeouts. */
const REQUEST_TIMEOUT = '5s';

const DONE_SCRIPT =
  `
done = function(summary, latency, requests)
  local f = io.open("/proc/self/stat", "r")
  local stat = ""
  if f then stat = f:read("*a"); f:close() end
  stat = string.gsub(stat, "[\\n\\"\\\\]", " ")
  local e = summary.errors
  io.write(string.format(
    "\\n${RESULT_PREFIX}{\\"requests\\":%d,\\"durationUs\\":%d,\\"bytes\\":%d,` +
  `\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,` +
  `\\"p50Us\\":%d,\\"p90Us\\":%d,\\"p99Us\\":%d,\\"p999Us\\":%d,\\"maxUs\\":%d,` +
  `\\"stat\\":\\"%s\\"}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, stat))
end
`;

/** Path of the Lua script, once written. */
let scriptPath: string | undefined;

/** How one wrk run is shaped. */
export interface WrkOptions {
  url: string;
  connections: number;
  threads: number;
  durationSeconds: number;
  /** Send `Connection: close` so every request opens a new connection. */
  isNewConnectionPerRequest: boolean;
  /** Extra request headers, each `Name: value` (e.g. `Authorization: Bearer ...`). */
  headers?: readonly string[];
}

/** What one wrk run measured. */
export interface WrkResult {
  requests: number;
  requestsPerSecond: number;
  durationSeconds: number;
  /** Socket errors by kind, and non-2xx/3xx answers (`status`). */
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** CPU time wrk itself used (all threads), in seconds. */
  wrkCpuSeconds: number;
}

/** Whether the wrk binary is on the PATH. */
export function hasWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Runs wrk once and parses its result line; rejects when wrk fails or prints none. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const script = doneScriptPath();
  const args = [
    '-t',
    String(options.threads),
    '-c',
    String(options.connections),
    '-d',
    `${options.durationSeconds}s`,
    '--timeout',
    REQUEST_TIMEOUT,
    '-s',
    script,
    ...(options.isNewConnectionPerRequest ? ['-H', 'Connection: close'] : []),
    ...(options.headers ?? []).flatMap((header) => ['-H', header]),
    options.url,
  ];
  const wrk = spawnBenchChild('wrk', args);
  let resultLine: string | undefined;
  wrk.onLine((line) => {
    if (line.startsWith(RESULT_PREFIX)) resultLine = line.slice(RESULT_PREFIX.length);
  });
  const overrun = setTimeout(() => void wrk.stop(), options.durationSeconds * 1000 + OVERRUN_MS);
  try {
    const code = await wrk.exited;
    if (code !== 0 || !resultLine) {
      throw new Error(`wrk exited with ${code} without a result:\n${wrk.outputTail()}`);
    }
    return parseWrkResult(resultLine);
  } finally {
    clearTimeout(overrun);
  }
}

/** Writes the Lua script once per process; it is removed as the process exits. */
function doneScriptPath(): string {
  if (scriptPath) return scriptPath;
  const dir = mkdtempSync(join(tmpdir(), 'palisade-wrk-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  scriptPath = join(dir, 'done.lua');
  writeFileSync(scriptPath, DONE_SCRIPT);
  return scriptPath;
}

/** Parses the JSON the Lua `done` hook prints after the result prefix. */
export function parseWrkResult(line: string): WrkResult {
  const raw = JSON.parse(line) as {
    requests: number;
    durationUs: number;
    connect: number;
    read: number;
    write: number;
    status: number;
    timeout: number;
    p50Us: number;
    p90Us: number;
    p99Us: number;
    p999Us: number;
    maxUs: number;
    stat: string;
  };
  const durationSeconds = raw.durationUs / 1e6;
  return {
    requests: raw.requests,
    requestsPerSecond: Math.round(raw.requests / Math.max(durationSeconds, 1e-9)),
    durationSeconds: round(durationSeconds),
    errors: {
      connect: raw.connect,
      read: raw.read,
      write: raw.write,
      status: raw.status,
      timeout: raw.timeout,
    },
    p50Ms: round(raw.p50Us / 1000),
    p90Ms: round(raw.p90Us / 1000),
    p99Ms: round(raw.p99Us / 1000),
    p999Ms: round(raw.p999Us / 1000),
    maxMs: round(raw.maxUs / 1000),
    wrkCpuSeconds: cpuSecondsOfStat(raw.stat),
  };
}
