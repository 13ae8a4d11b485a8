// Runs the comparison's peers as child processes: for each of HAProxy,
// stunnel and nginx a client-side and a server-side instance, each with its
// own directory, configuration, pid file and log, stopped with the bench.
// Also installs a missing peer with apt-get when the bench runs as root.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnBenchChild, type BenchChild } from './bench-child.js';
import { pickFreePort } from './free-port.js';
import {
  NGINX_STREAM_MODULE_PATH,
  planPeerLaunch,
  type PeerName,
  type PeerSide,
} from './peer-configs.js';
import type { PeerCertFiles } from './peer-pki.js';

/** How long an instance may take to accept connections, in ms. */
const LISTEN_TIMEOUT_MS = 10_000;

/** How often the bench tries to connect while an instance starts, in ms. */
const LISTEN_POLL_MS = 25;

/** How long `apt-get install` may run, in ms. */
const INSTALL_TIMEOUT_MS = 300_000;

/** The Debian packages each tool needs, and what proves it installed. */
export const TOOL_PACKAGES: Record<PeerName | 'wrk', { packages: string[]; files: string[] }> = {
  wrk: { packages: ['wrk'], files: [] },
  haproxy: { packages: ['haproxy'], files: [] },
  stunnel: { packages: ['stunnel4'], files: [] },
  nginx: { packages: ['nginx', 'libnginx-mod-stream'], files: [NGINX_STREAM_MODULE_PATH] },
};

/** How each tool reports its version: the command and the flag. */
const VERSION_ARGS: Record<PeerName | 'wrk', string[]> = {
  wrk: ['wrk', '--version'],
  haproxy: ['haproxy', '-v'],
  stunnel: ['stunnel', '-version'],
  nginx: ['nginx', '-v'],
};

/** Whether a tool is usable, and its version line, or why it is not. */
export type ToolCheck = { ok: true; version: string } | { ok: false; reason: string };

/** A running client-side plus server-side pair of one peer. */
export interface PeerPair {
  peer: PeerName;
  /** Where the app client connects: the client-side instance's plain TCP port. */
  address: string;
  /** The server-side instance's TLS address, for the mutual-TLS probe. */
  tlsAddress: string;
  /** Root pids of both instances; their descendants (nginx workers) belong to them too. */
  pids: number[];
  /** Stops both instances. */
  stop(): Promise<void>;
}

/** How to start a pair. */
export interface PeerPairOptions {
  /** A directory the caller removes; each instance gets a folder inside it. */
  workDir: string;
  /** `127.0.0.1:<port>` of the app server. */
  appAddress: string;
  clientCert: PeerCertFiles;
  serverCert: PeerCertFiles;
  /** Each instance's stop is pushed here as soon as it runs. */
  stops: (() => Promise<void>)[];
}

/**
 * Checks that `tool` is installed; when it is not and the bench runs as root,
 * installs its packages with `apt-get install -y`. Never throws.
 */
export function ensureTool(tool: PeerName | 'wrk', log: (line: string) => void): ToolCheck {
  const first = checkTool(tool);
  if (first.ok) return first;
  const { packages } = TOOL_PACKAGES[tool];
  if (process.getuid?.() !== 0) {
    return {
      ok: false,
      reason: `${first.reason}; not root, so not installing ${packages.join(' ')}`,
    };
  }
  log(`installing ${packages.join(' ')} with apt-get...`);
  const install = (args: string[]) =>
    spawnSync('apt-get', args, {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: 'ignore',
      timeout: INSTALL_TIMEOUT_MS,
    }).status === 0;
  // A fresh image may have no package lists yet: update once and try again.
  const isInstalled =
    install(['install', '-y', ...packages]) ||
    (install(['update']) && install(['install', '-y', ...packages]));
  if (!isInstalled) return { ok: false, reason: `apt-get install -y ${packages.join(' ')} failed` };
  return checkTool(tool);
}

/** Starts the server-side instance, then the client-side one, and waits until both listen. */
export async function startPeerPair(peer: PeerName, options: PeerPairOptions): Promise<PeerPair> {
  const tlsAddress = `127.0.0.1:${await pickFreePort()}`;
  const address = `127.0.0.1:${await pickFreePort()}`;
  const server = await startInstance(peer, 'server', options, {
    listenAddress: tlsAddress,
    forwardAddress: options.appAddress,
    cert: options.serverCert,
  });
  const client = await startInstance(peer, 'client', options, {
    listenAddress: address,
    forwardAddress: tlsAddress,
    cert: options.clientCert,
  });
  return {
    peer,
    address,
    tlsAddress,
    pids: [client.pid, server.pid],
    stop: async () => {
      await Promise.all([client.stop(), server.stop()]);
    },
  };
}

function checkTool(tool: PeerName | 'wrk'): ToolCheck {
  const [command, ...args] = VERSION_ARGS[tool] as [string, ...string[]];
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) return { ok: false, reason: `${command} is not on the PATH` };
  const missing = TOOL_PACKAGES[tool].files.filter((file) => !existsSync(file));
  if (missing.length > 0) return { ok: false, reason: `${missing.join(', ')} is missing` };
  // wrk prints its version and exits 1; nginx prints it on stderr.
  const version = `${result.stdout}${result.stderr}`.split('\n').find((line) => line.trim());
  return { ok: true, version: version?.trim() ?? command };
}

async function startInstance(
  peer: PeerName,
  side: PeerSide,
  options: PeerPairOptions,
  where: { listenAddress: string; forwardAddress: string; cert: PeerCertFiles },
): Promise<BenchChild> {
  const dir = join(options.workDir, `${peer}-${side}`);
  mkdirSync(dir, { recursive: true });
  const launch = planPeerLaunch(peer, {
    side,
    dir,
    ...where,
    serverName: options.serverCert.dnsName,
  });
  const configPath = join(dir, launch.configFile);
  writeFileSync(configPath, launch.config);
  const args = launch.args.map((arg) => (arg === '{config}' ? configPath : arg));
  const child = spawnBenchChild(launch.command, args, { cwd: dir });
  options.stops.push(() => child.stop());
  try {
    await waitUntilListening(where.listenAddress, child);
    return child;
  } catch (err) {
    await child.stop();
    throw new Error(
      `${peer} (${side} side) did not start: ${(err as Error).message}\n${child.outputTail()}` +
        `\nconfiguration ${configPath}:\n${launch.config}`,
      { cause: err },
    );
  }
}

/** Polls a TCP connect to `address` until it succeeds; rejects when the child exits first. */
async function waitUntilListening(address: string, child: BenchChild): Promise<void> {
  const [host, port] = address.split(':') as [string, string];
  const deadline = Date.now() + LISTEN_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.hasExited()) throw new Error('it exited');
    const isOpen = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(port), host, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (isOpen) return;
    await sleep(LISTEN_POLL_MS);
  }
  throw new Error(`nothing listened on ${address} within ${LISTEN_TIMEOUT_MS} ms`);
}

/** Number of threads HAProxy starts by default, from `haproxy -vv`. */
export function haproxyDefaultThreads(): number | undefined {
  try {
    const text = execFileSync('haproxy', ['-vv'], { encoding: 'utf8' });
    const match = /default=(\d+)\)/.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    // Only a footnote depends on it; the table says "unknown" instead.
    return undefined;
  }
}
