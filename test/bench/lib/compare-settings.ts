// The comparison benchmark's command line: flags, their defaults and the
// shorter ones of `--quick`, parsed into one settings object.
import { parseArgs } from 'node:util';
import { PATH_NAMES, type PathName } from './compare-report.js';

/** wrk threads: one, so the proxies keep the other core. */
const WRK_THREADS = 1;

/** Full-run settings, and the shorter ones of `--quick`. */
const FULL = {
  durationSeconds: 8,
  warmupSeconds: 2,
  bulkMib: 256,
  startupRuns: 7,
  signingMs: 4000,
  revocations: 20,
};
const QUICK = {
  durationSeconds: 2,
  warmupSeconds: 1,
  bulkMib: 32,
  startupRuns: 3,
  signingMs: 1000,
  revocations: 5,
};
/** wrk connections unless `--connections` says otherwise. */
const DEFAULT_CONNECTIONS = 32;

/** The `--help` text. */
export const USAGE = `usage: npm run bench -- [options]
  --quick              short windows (${QUICK.durationSeconds} s after ${QUICK.warmupSeconds} s warm-ups, ${QUICK.bulkMib} MiB bulk); under two minutes
  --duration <s>       measurement window per path and scenario (default ${FULL.durationSeconds}, quick ${QUICK.durationSeconds})
  --connections <n>    wrk connections (default ${DEFAULT_CONNECTIONS})
  --only <list>        comma list of palisade, haproxy, stunnel, nginx (default: all); direct always runs
                       as the baseline; Palisade's CA and agent figures run only with palisade
Needs wrk, haproxy, stunnel4, nginx and libnginx-mod-stream (Debian); as root the bench installs
what is missing with apt-get, otherwise it skips that peer with a line saying why. Linux only.`;

/** The bench's settings, from its command line. */
export interface CompareSettings {
  isQuick: boolean;
  durationSeconds: number;
  warmupSeconds: number;
  connections: number;
  threads: number;
  bulkMib: number;
  startupRuns: number;
  signingMs: number;
  revocations: number;
  paths: PathName[];
}

/**
 * Parses the bench's arguments; `undefined` means `--help` was asked.
 * Throws on a malformed number or an unknown path name.
 */
export function parseCompareSettings(argv: string[]): CompareSettings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      connections: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  const base = values.quick ? QUICK : FULL;
  const count = (flag: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
    return n;
  };
  return {
    ...base,
    isQuick: values.quick,
    durationSeconds: count('duration', values.duration, base.durationSeconds),
    connections: count('connections', values.connections, DEFAULT_CONNECTIONS),
    threads: WRK_THREADS,
    paths: parsePaths(values.only),
  };
}

function parsePaths(text: string | undefined): PathName[] {
  if (text === undefined) return [...PATH_NAMES];
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name);
  const known: readonly string[] = PATH_NAMES;
  const unknown = names.filter((name) => !known.includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new Error(
      `--only takes a comma list of ${PATH_NAMES.slice(1).join(', ')}; unknown: ${unknown.join(', ')}`,
    );
  }
  return PATH_NAMES.filter((path) => path === 'direct' || names.includes(path));
}
