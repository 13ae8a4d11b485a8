// Meters one measurement window of the data-path bench: CPU time of both
// agents, the app server, the load generator and the bench itself, what the
// rest of the machine used meanwhile, and the agents' highest memory.
import { performance } from 'node:perf_hooks';
import type { PerAgent, WindowResources } from './agent-report.js';
import { round } from './latency-summary.js';
import { readMachineCpu, type MachineCpu } from './machine-cpu.js';
import { readProcessStatus } from './process-status.js';

/** How often agent memory is sampled during a window, in ms. */
const RSS_SAMPLE_MS = 100;

/** The processes a window is charged to. */
export interface MeteredPids {
  agents: PerAgent<number>;
  app: number;
}

/** How a window ends: what it carried and who generated the load. */
export interface WindowEnd {
  /** Requests served, or MB moved for bulk; the agents' CPU is given per unit. */
  units: number;
  /** CPU time of a separate load generator (wrk); omitted when the bench made the load itself. */
  loadProcessCpuSeconds?: number;
}

/** A window being metered. */
export interface OpenWindow {
  /** Closes the window and works out its resource use. */
  finish(end: WindowEnd): WindowResources;
}

/** CPU counters read at one instant. */
interface CpuSnapshot {
  agents: PerAgent<number>;
  app: number;
  machine: MachineCpu;
  benchSeconds: number;
  atMs: number;
}

/** Opens a window now: reads every CPU counter and starts sampling agent memory. */
export function openWindow(pids: MeteredPids): OpenWindow {
  const rssMax = { a: 0, b: 0 };
  const sampleRss = () => {
    rssMax.a = Math.max(rssMax.a, readProcessStatus(pids.agents.a).rssBytes);
    rssMax.b = Math.max(rssMax.b, readProcessStatus(pids.agents.b).rssBytes);
  };
  sampleRss();
  const timer = setInterval(sampleRss, RSS_SAMPLE_MS);
  const before = snapshot(pids);
  return {
    finish: (end) => {
      const after = snapshot(pids);
      clearInterval(timer);
      sampleRss();
      return resourcesOf(before, after, end, rssMax);
    },
  };
}

/**
 * Everything the machine spent beyond the agents, the app, the load generator
 * and the bench counts as other processes. Soft-interrupt time is reported
 * apart and not counted as theirs: on loopback it is mostly the bench's own
 * traffic, which the kernel charges to no process.
 */
function resourcesOf(
  before: CpuSnapshot,
  after: CpuSnapshot,
  end: WindowEnd,
  agentRssMaxBytes: PerAgent<number>,
): WindowResources {
  const wallSeconds = (after.atMs - before.atMs) / 1000;
  const percent = (seconds: number) => Math.round((seconds * 100) / wallSeconds);
  const agentCpuSeconds = {
    a: round(after.agents.a - before.agents.a),
    b: round(after.agents.b - before.agents.b),
  };
  const agentsTotal = agentCpuSeconds.a + agentCpuSeconds.b;
  const appCpuSeconds = after.app - before.app;
  const benchSeconds = after.benchSeconds - before.benchSeconds;
  const loadProcessSeconds = end.loadProcessCpuSeconds ?? 0;
  const othersSeconds =
    after.machine.busySeconds -
    before.machine.busySeconds -
    agentsTotal -
    appCpuSeconds -
    benchSeconds -
    loadProcessSeconds;
  return {
    wallSeconds: round(wallSeconds),
    agentCpuSeconds,
    agentCpuPercent: percent(agentsTotal),
    agentCpuUsPerUnit: round((agentsTotal * 1e6) / Math.max(1, end.units)),
    appCpuSeconds: round(appCpuSeconds),
    loadCpuSeconds: round(end.loadProcessCpuSeconds ?? benchSeconds),
    othersCpuPercent: Math.max(0, percent(othersSeconds)),
    softirqCpuPercent: percent(after.machine.softirqSeconds - before.machine.softirqSeconds),
    agentRssMaxBytes: { ...agentRssMaxBytes },
  };
}

function snapshot(pids: MeteredPids): CpuSnapshot {
  const usage = process.cpuUsage();
  return {
    agents: {
      a: readProcessStatus(pids.agents.a).cpuSeconds,
      b: readProcessStatus(pids.agents.b).cpuSeconds,
    },
    app: readProcessStatus(pids.app).cpuSeconds,
    machine: readMachineCpu(),
    benchSeconds: (usage.user + usage.system) / 1e6,
    atMs: performance.now(),
  };
}
