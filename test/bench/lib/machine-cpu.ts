// Reads how much CPU time the whole machine has used, from /proc/stat, with
// the time spent in soft interrupts kept apart: on 127.0.0.1 most of that is
// the bench's own loopback traffic, which no process is charged for.
import { readFileSync } from 'node:fs';
import { CLOCK_TICKS_PER_SECOND } from './process-status.js';

/** Machine-wide CPU time since boot, in seconds (summed over every core). */
export interface MachineCpu {
  /** user, nice, system, irq and steal: time charged to processes or lost to the host. */
  busySeconds: number;
  /** softirq: network receive and transmit processing, among others. */
  softirqSeconds: number;
}

/** Reads the first (all-core) line of /proc/stat. */
export function readMachineCpu(): MachineCpu {
  const cpuLine = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user, nice, system, , , irq, softirq, steal] = cpuLine
    .trim()
    .split(/\s+/)
    .slice(1)
    .map((n) => Number(n) || 0);
  const ticks = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (steal ?? 0);
  return {
    busySeconds: ticks / CLOCK_TICKS_PER_SECOND,
    softirqSeconds: (softirq ?? 0) / CLOCK_TICKS_PER_SECOND,
  };
}
