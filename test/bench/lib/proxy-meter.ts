// Meters one window of the comparison: CPU time and the highest summed RSS of
// a path's two proxy instances (every process and thread of each), and how
// much CPU the rest of the machine used meanwhile.
import { performance } from 'node:perf_hooks';
import type { MeteredWindow } from './compare-report.js';
import { round } from './latency-summary.js';
import { readMachineCpu } from './machine-cpu.js';
import { readProcessStatus } from './process-status.js';
import { readTreeStatus } from './process-tree.js';

/** How often proxy memory is sampled during a window, in ms. */
const RSS_SAMPLE_MS = 100;

/** A window being metered. */
export interface OpenProxyWindow {
  /** Closes the window; `loadCpuSeconds` is the load generator's own CPU time, when separate. */
  finish(loadCpuSeconds?: number): MeteredWindow;
}

/**
 * Opens a window now over the process trees rooted at `proxyPids`; `appPid`
 * is charged to the path, not to other processes. With no proxies (the
 * direct path) the proxy figures stay zero.
 */
export function openProxyWindow(proxyPids: readonly number[], appPid: number): OpenProxyWindow {
  let rssMaxBytes = 0;
  const sampleRss = () => {
    if (proxyPids.length > 0)
      rssMaxBytes = Math.max(rssMaxBytes, readTreeStatus(proxyPids).rssBytes);
  };
  const read = () => {
    const usage = process.cpuUsage();
    return {
      proxies: proxyPids.length > 0 ? readTreeStatus(proxyPids).cpuSeconds : 0,
      app: readProcessStatus(appPid).cpuSeconds,
      machine: readMachineCpu().busySeconds,
      bench: (usage.user + usage.system) / 1e6,
      atMs: performance.now(),
    };
  };
  sampleRss();
  const timer = setInterval(sampleRss, RSS_SAMPLE_MS);
  const before = read();
  return {
    finish: (loadCpuSeconds = 0) => {
      const after = read();
      clearInterval(timer);
      sampleRss();
      const wallSeconds = (after.atMs - before.atMs) / 1000;
      const proxyCpuSeconds = after.proxies - before.proxies;
      const othersSeconds =
        after.machine -
        before.machine -
        proxyCpuSeconds -
        (after.app - before.app) -
        (after.bench - before.bench) -
        loadCpuSeconds;
      return {
        wallSeconds: round(wallSeconds),
        proxyCpuSeconds: round(proxyCpuSeconds),
        proxyRssMaxBytes: rssMaxBytes,
        othersCpuPercent: Math.max(0, Math.round((othersSeconds * 100) / wallSeconds)),
      };
    },
  };
}
