// Runs `palisade agent` (and the one-shot `palisade ca` commands that set it
// up) as child processes, the way an operator would, and waits for each agent
// to log `agent.ready` with the addresses it bound.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AGENT_NODE_FLAGS } from '../../../agent/config/agent-config.js';
import { spawnBenchChild, waitForLine, type BenchChild } from './bench-child.js';
import { readProcessStatus, type ProcessStatus } from './process-status.js';

/** The compiled CLI, relative to this file in dist/test/bench/lib/. */
export const MAIN_JS_PATH = fileURLToPath(new URL('../../../agent/cli/main.js', import.meta.url));

/** How long an agent may take to get its certificate and listen, in ms. */
const READY_TIMEOUT_MS = 20_000;

/** How long a one-shot CLI command may run, in ms. */
const COMMAND_TIMEOUT_MS = 30_000;

const execFileAsync = promisify(execFile);

/** The fields of the `agent.ready` log line the bench uses. */
interface ReadyLine {
  event?: string;
  peer_id?: string;
  inbound_address?: string;
  upstreams?: string[];
  admin_address?: string;
}

/** A running agent process, ready to carry traffic. */
export interface AgentProcess extends BenchChild {
  spiffeId: string;
  inboundAddress: string;
  /** Bound explicit upstream addresses, in flag order. */
  upstreamAddresses: string[];
  adminAddress: string;
  /** Reads the agent's CPU time and memory now. */
  status(): ProcessStatus;
}

/** How to start one agent; `args` are the `palisade agent` flags. */
export interface AgentProcessOptions {
  args: readonly string[];
  /** Extra environment, e.g. PALISADE_JOIN_TOKEN, which stays out of `ps` unlike a flag. */
  env?: Record<string, string>;
  /** When set, the agent runs under `node --cpu-prof` and writes its profile here on exit. */
  cpuProfileDir?: string;
}

/** Runs `palisade <args>` to completion and returns its stdout; rejects with its stderr. */
export async function runPalisade(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  try {
    const { stdout } = await execFileAsync(process.execPath, [MAIN_JS_PATH, ...args], {
      env,
      timeout: COMMAND_TIMEOUT_MS,
    });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`palisade ${args.slice(0, 3).join(' ')} failed: ${stderr.trim()}`, {
      cause: err,
    });
  }
}

/** Starts `palisade agent <args>` and resolves once it logs `agent.ready`. */
export async function startAgentProcess(options: AgentProcessOptions): Promise<AgentProcess> {
  const nodeFlags = options.cpuProfileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`]
    : [];
  const child = spawnBenchChild(
    process.execPath,
    [...AGENT_NODE_FLAGS, ...nodeFlags, MAIN_JS_PATH, 'agent', ...options.args],
    { env: { ...process.env, ...options.env } },
  );
  try {
    const ready = await waitForLine(child, parseReadyLine, READY_TIMEOUT_MS, 'agent');
    return {
      ...child,
      spiffeId: ready.peer_id ?? '',
      inboundAddress: ready.inbound_address ?? '',
      upstreamAddresses: ready.upstreams ?? [],
      adminAddress: ready.admin_address ?? '',
      status: () => readProcessStatus(child.pid),
    };
  } catch (err) {
    await child.stop();
    throw new Error(`${(err as Error).message}\n${child.outputTail()}`, { cause: err });
  }
}

function parseReadyLine(line: string): ReadyLine | undefined {
  if (!line.includes('agent.ready')) return undefined;
  try {
    const parsed = JSON.parse(line) as ReadyLine;
    return parsed.event === 'agent.ready' ? parsed : undefined;
  } catch {
    // Not a JSON log line (e.g. a warning printed by node itself): keep waiting.
    return undefined;
  }
}
