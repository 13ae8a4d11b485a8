// Runs `palisade ca serve` as a child process so that the CA under load never
// shares the benchmark's event loop, and reads its CPU time and peak memory
// from /proc. Linux only, like the figures it reports.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** The compiled CLI, relative to this file in dist/test/bench/lib/. */
const MAIN_JS_PATH = fileURLToPath(new URL('../../../agent/cli/main.js', import.meta.url));

/** How long the CA may take to start listening before the bench gives up. */
const START_TIMEOUT_MS = 15_000;

/** How often the bench looks for the CA's listening socket while it starts. */
const START_POLL_MS = 25;

/** How long the CA gets to exit after SIGTERM (and write its CPU profile) before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** How much of the CA's stderr and stdout is kept to explain a failure, in characters. */
const OUTPUT_TAIL_CHARS = 4_000;

/** State of a listening TCP socket in /proc/net/tcp. */
const TCP_LISTEN_STATE = '0A';

/** Kernel clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
const CLOCK_TICKS_PER_SECOND = readClockTicksPerSecond();

/** Children still running, killed outright if the bench exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** What the kernel has counted for a process so far. */
export interface ProcessUsage {
  /** User plus system CPU time, in seconds. */
  cpuSeconds: number;
  /** Peak resident set size (VmHWM), in bytes. */
  peakRssBytes: number;
}

/** A running CA child process. */
export interface CaProcess {
  pid: number;
  /** `127.0.0.1:<port>` the CA bound. */
  address: string;
  /** Reads the CA's CPU time and peak RSS now. */
  usage(): ProcessUsage;
  /** Stops the CA (SIGTERM, then SIGKILL after a grace period); safe to call twice. */
  stop(): Promise<void>;
}

/** How to start the CA. */
export interface CaProcessOptions {
  dir: string;
  passphrase: string;
  /** When set, the CA runs under `node --cpu-prof` and writes its profile here on exit. */
  cpuProfileDir?: string;
}

/**
 * Starts `palisade ca serve --listen 127.0.0.1:0 --log-level warn` and
 * resolves once it listens. The bound port is read from the kernel's socket
 * table (the child's own listening socket), since the `ca.started` line is
 * below the warn level. Rejects, with the child's output, if it exits first.
 */
export async function startCaProcess(options: CaProcessOptions): Promise<CaProcess> {
  const nodeFlags = options.cpuProfileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`]
    : [];
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags,
      MAIN_JS_PATH,
      'ca',
      'serve',
      '--dir',
      options.dir,
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ],
    {
      env: { ...process.env, PALISADE_CA_PASSPHRASE: options.passphrase },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  liveChildren.add(child);
  let outputTail = '';
  const keepTail = (chunk: Buffer) => {
    outputTail = (outputTail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout.on('data', keepTail);
  child.stderr.on('data', keepTail);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      liveChildren.delete(child);
      resolve();
    });
  });

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(force);
  };

  const pid = child.pid;
  try {
    if (pid === undefined) throw new Error('the CA process did not start');
    const port = await waitForListeningPort(pid, () => child.exitCode !== null);
    return { pid, address: `127.0.0.1:${port}`, usage: () => readUsage(pid), stop };
  } catch (err) {
    await stop();
    throw new Error(`CA process failed to start: ${(err as Error).message}\n${outputTail}`, {
      cause: err,
    });
  }
}

/** Polls until process `pid` owns a listening TCP socket on 127.0.0.1 and returns its port. */
async function waitForListeningPort(pid: number, hasExited: () => boolean): Promise<number> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (hasExited()) throw new Error('it exited before listening');
    const port = listeningLoopbackPort(pid);
    if (port !== undefined) return port;
    await sleep(START_POLL_MS);
  }
  throw new Error(`it did not listen within ${START_TIMEOUT_MS} ms`);
}

/** The port of a socket that `pid` holds and that listens on 127.0.0.1, if any. */
function listeningLoopbackPort(pid: number): number | undefined {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1] as string);
    } catch {
      // The descriptor closed between listing and reading it: it is not the listener.
    }
  }
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [local, state, inode] = [fields[1], fields[3], fields[9]];
    if (!local || state !== TCP_LISTEN_STATE || !inode || !inodes.has(inode)) continue;
    const [ipHex, portHex] = local.split(':');
    // /proc/net/tcp prints IPv4 addresses as little-endian hex: 127.0.0.1 is 0100007F.
    if (ipHex === '0100007F' && portHex) return parseInt(portHex, 16);
  }
  return undefined;
}

/**
 * CPU time every process on the machine has used since boot (user, nice,
 * system, irq, softirq and steal from /proc/stat), in seconds: with the CA's
 * and the bench's own share taken out, it shows how busy the rest of a
 * shared machine was while the bench ran.
 */
export function readMachineBusySeconds(): number {
  const cpuLine = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user, nice, system, , , irq, softirq, steal] = cpuLine
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const ticks = [user, nice, system, irq, softirq, steal].reduce<number>(
    (sum, n) => sum + (n ?? 0),
    0,
  );
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** Reads utime + stime from /proc/<pid>/stat and VmHWM from /proc/<pid>/status. */
function readUsage(pid: number): ProcessUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwmKiB = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND, peakRssBytes: hwmKiB * 1024 };
}

function readClockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    // getconf is missing on some minimal images; 100 is the Linux default on every arch we run.
    return 100;
  }
}
