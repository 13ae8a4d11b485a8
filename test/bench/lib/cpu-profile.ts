// Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and ranks where the
// sampled time went: by function (self time), by source module, and by
// Palisade's own functions including what they call (total time).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { round } from './latency-summary.js';

/** A place that took CPU time, with its share of the profile. */
export interface ProfileEntry {
  name: string;
  selfMs: number;
  /** Percentage of all sampled time, idle included. */
  selfPercent: number;
}

/** The top self-time functions and modules of one profile. */
export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Share of the profile the process spent idle (waiting in the event loop). */
  idlePercent: number;
  functions: ProfileEntry[];
  modules: ProfileEntry[];
  /** Palisade functions (dist/certs, dist/agent) by total time: self plus callees. */
  palisadeTotals: ProfileEntry[];
}

interface CpuProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Script URLs of Palisade's own compiled code (not the bench, not packages). */
const PALISADE_URL = /\/dist\/(certs|agent|proto)\//;

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Summarises the only `.cpuprofile` in `dir`; throws when there is none. */
export function summarizeCpuProfileDir(dir: string, limit: number): ProfileSummary {
  const name = readdirSync(dir).find((file) => file.endsWith('.cpuprofile'));
  if (!name) throw new Error(`no .cpuprofile was written to ${dir}`);
  return summarizeCpuProfile(join(dir, name), limit);
}

/** Ranks the `limit` functions and modules with the most self time in a `.cpuprofile`. */
export function summarizeCpuProfile(path: string, limit: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  const byPalisadeTotal = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;

  profile.samples.forEach((nodeId, i) => {
    // timeDeltas[i] is the time since the previous sample; charge it to this one.
    const us = Math.max(0, profile.timeDeltas[i] ?? 0);
    const frame = frames.get(nodeId);
    if (!frame) return;
    totalUs += us;
    if (frame.functionName === '(idle)') idleUs += us;
    const fn = functionName(frame);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    const module = frame.url ? moduleOf(frame.url) : frame.functionName;
    byModule.set(module, (byModule.get(module) ?? 0) + us);

    // Charge the sample once to every Palisade function on its stack.
    const onStack = new Set<string>();
    for (let id: number | undefined = nodeId; id !== undefined; id = parents.get(id)) {
      const caller = frames.get(id);
      if (caller && PALISADE_URL.test(caller.url)) onStack.add(functionName(caller));
    }
    for (const name of onStack) byPalisadeTotal.set(name, (byPalisadeTotal.get(name) ?? 0) + us);
  });

  const rank = (totals: Map<string, number>) =>
    [...totals.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([entry, us]) => ({
        name: entry,
        selfMs: round(us / 1000),
        selfPercent: round((us * 100) / Math.max(1, totalUs)),
      }));
  return {
    file: path,
    totalMs: round(totalUs / 1000),
    idlePercent: round((idleUs * 100) / Math.max(1, totalUs)),
    functions: rank(byFunction),
    modules: rank(byModule),
    palisadeTotals: rank(byPalisadeTotal),
  };
}

function functionName(frame: CpuProfileNode['callFrame']): string {
  const where = frame.url ? `${moduleOf(frame.url)}:${frame.lineNumber + 1}` : '(native)';
  return `${frame.functionName || '(anonymous)'} ${where}`;
}

/** Shortens a script URL to `package/file` for node_modules, else the path from the project. */
function moduleOf(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const inPackage = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
  if (inPackage) return `${inPackage[1]}/${inPackage[2]}`;
  const inDist = /\/dist\/(.*)$/.exec(path);
  return inDist ? (inDist[1] as string) : path;
}
