// Child processes of a benchmark (the CA, the agents, the app server, wrk):
// started with their output kept for error messages, read line by line, and
// stopped on every exit path, including a crash of the bench itself.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

/** How long a child gets to exit after SIGTERM (and write a CPU profile) before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** How much of a child's stdout and stderr is kept to explain a failure, in characters. */
const OUTPUT_TAIL_CHARS = 4_000;

/** Children still running, killed outright if the bench exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** A running child process of the bench. */
export interface BenchChild {
  pid: number;
  /** The last few thousand characters the child wrote to stdout and stderr. */
  outputTail(): string;
  /** Calls `listener` with each line the child writes to stdout. */
  onLine(listener: (line: string) => void): void;
  /** Whether the child has exited. */
  hasExited(): boolean;
  /** Resolves when the child has exited, with its exit code (null when signalled). */
  exited: Promise<number | null>;
  /** Stops the child (SIGTERM, then SIGKILL after a grace period); safe to call twice. */
  stop(): Promise<void>;
}

/** Spawns `command` with piped stdout and stderr; throws when it cannot be started. */
export function spawnBenchChild(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): BenchChild {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${command} did not start`);
  liveChildren.add(child);
  let tail = '';
  const keepTail = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      liveChildren.delete(child);
      resolve(code);
    });
  });
  // A spawn error (e.g. ENOENT) also ends in 'exit' or leaves the pid unset;
  // keep it from being an unhandled 'error' event.
  child.on('error', keepTailOfError);

  function keepTailOfError(err: Error): void {
    tail = `${tail}\n${err.message}`.slice(-OUTPUT_TAIL_CHARS);
  }

  const hasExited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    pid: child.pid,
    outputTail: () => tail,
    onLine: (listener) => lines.on('line', listener),
    hasExited,
    exited,
    stop: async () => {
      if (hasExited()) return;
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(force);
    },
  };
}

/** Waits for the first stdout line `pick` maps to a value; rejects on exit or timeout. */
export function waitForLine<T>(
  child: BenchChild,
  pick: (line: string) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let isSettled = false;
    const settle = (fn: () => void) => {
      if (isSettled) return;
      isSettled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(
      () => settle(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`))),
      timeoutMs,
    );
    child.onLine((line) => {
      const value = pick(line);
      if (value !== undefined) settle(() => resolve(value));
    });
    void child.exited.then((code) =>
      settle(() => reject(new Error(`${what}: exited with ${code} before it was ready`))),
    );
  });
}
