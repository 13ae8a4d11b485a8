// Reads what the kernel counts for a process and all its descendants: nginx's
// master with its workers, or a single multi-threaded HAProxy or stunnel (a
// process's /proc counters already cover all of its threads). Linux only.
import { readdirSync, readFileSync } from 'node:fs';
import { cpuSecondsOfStat } from './process-status.js';

/** CPU time and memory summed over a set of process trees, read at one instant. */
export interface TreeStatus {
  /** Every live process counted: the roots and their descendants. */
  pids: number[];
  /** User plus system CPU time of those processes since each started, in seconds. */
  cpuSeconds: number;
  /** Sum of their resident set sizes now (VmRSS), in bytes; shared pages count once per process. */
  rssBytes: number;
}

/** The parent of every live process, from /proc/<pid>/stat. */
export function readParentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === undefined) continue;
    // Field 4 (ppid) is the second field after the parenthesised command name.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    parents.set(Number(entry), ppid);
  }
  return parents;
}

/** `roots` and all their descendants in `parents` (pid -> ppid), roots first. */
export function descendantsOf(roots: readonly number[], parents: Map<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const siblings = children.get(ppid) ?? [];
    siblings.push(pid);
    children.set(ppid, siblings);
  }
  const found: number[] = [];
  const queue = [...roots];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** Sums CPU time and RSS over `roots` and their descendants; processes gone meanwhile count zero. */
export function readTreeStatus(roots: readonly number[]): TreeStatus {
  const pids = descendantsOf(roots, readParentPids());
  let cpuSeconds = 0;
  let rssBytes = 0;
  const live: number[] = [];
  for (const pid of pids) {
    const stat = readStat(pid);
    const rss = readRssBytes(pid);
    if (stat === undefined || rss === undefined) continue;
    live.push(pid);
    cpuSeconds += cpuSecondsOfStat(stat);
    rssBytes += rss;
  }
  return { pids: live, cpuSeconds, rssBytes };
}

function readStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // The process exited between the listing and the read: it no longer counts.
    return undefined;
  }
}

function readRssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    // As above: an exited process holds no memory.
    return undefined;
  }
}
