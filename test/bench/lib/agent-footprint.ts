// Agent figures beyond the data path: how long `palisade agent` takes from
// spawn to ready with a P-256 key, and how much memory the agent pair holds
// while many idle keep-alive connections run through it.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CaClient } from '../../../certs/client/index.js';
import { startAgentProcess } from './agent-process.js';
import { pickFreePort } from './free-port.js';
import { round } from './latency-summary.js';

/** How long one connection may take to open and carry its first request, in ms. */
const CONNECTION_TIMEOUT_MS = 30_000;

/** Lifetime of the join tokens made for start-up runs, in seconds. */
const JOIN_TOKEN_TTL_SECONDS = 600;

/** What the start-up runs measured. */
export interface StartupFigures {
  /** Spawn to the `agent.ready` log line of each run, in ms. */
  runsMs: number[];
  medianMs: number;
  /** RSS of each agent as it became ready, in bytes. */
  readyRssBytes: number[];
}

/** Where start-up agents get their identity and which flags they share. */
export interface StartupOptions {
  runs: number;
  /** Admin client of the CA, to make one join token per run. */
  admin: CaClient;
  /** `palisade agent` flags naming the CA and its bundle. */
  caFlags: readonly string[];
  appAddress: string;
  /** The identity of run i is `makeId(i)`. */
  makeId(run: number): string;
}

/** A set of open connections, each having completed one request. */
export interface HeldConnections {
  count: number;
  /** Time to open all of them and complete their first requests, in ms. */
  openMs: number;
  close(): void;
}

/**
 * Starts a fresh agent with a P-256 key `runs` times, one after the other,
 * timing each from spawn to its `agent.ready` line (node start-up, key pair,
 * CSR, signing by the CA, trust bundle, listeners), then stops it.
 */
export async function measureStartToReady(options: StartupOptions): Promise<StartupFigures> {
  const runsMs: number[] = [];
  const readyRssBytes: number[] = [];
  for (let run = 0; run < options.runs; run++) {
    const spiffeId = options.makeId(run);
    const { token } = await options.admin.createJoinToken({
      spiffeId,
      ttlSeconds: JOIN_TOKEN_TTL_SECONDS,
    });
    const args = [
      ...options.caFlags,
      ...['--id', spiffeId, '--app-addr', options.appAddress, '--key-type', 'ecdsa-p256'],
      ...['--inbound-listen', `127.0.0.1:${await pickFreePort()}`],
      ...['--admin-listen', `127.0.0.1:${await pickFreePort()}`],
      ...['--drain-timeout', '1s', '--log-level', 'info'],
    ];
    const spawnedAt = performance.now();
    const agent = await startAgentProcess({ args, env: { PALISADE_JOIN_TOKEN: token } });
    runsMs.push(round(performance.now() - spawnedAt));
    readyRssBytes.push(agent.status().rssBytes);
    await agent.stop();
  }
  return { runsMs, medianMs: median(runsMs), readyRssBytes };
}

/**
 * Opens `count` TCP connections to `address`, `concurrency` at a time, and
 * sends one HTTP/1.1 request on each, waiting for its whole answer; the
 * connections then stay open, idle and kept alive, until `close()`.
 */
export async function holdConnections(
  address: string,
  count: number,
  concurrency: number,
): Promise<HeldConnections> {
  const [host, port] = address.split(':') as [string, string];
  const sockets: Socket[] = [];
  const close = () => {
    for (const socket of sockets) socket.destroy();
  };
  const startedAt = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next += 1;
      sockets.push(await openWithOneRequest(host, Number(port)));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  } catch (err) {
    close();
    throw err;
  }
  return { count: sockets.length, openMs: Math.round(performance.now() - startedAt), close };
}

/** The middle value of `values` (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2);
}

/**
 * Whether `received` holds one whole HTTP response with a Content-Length
 * body; a response without that header is complete at the end of its headers.
 */
export function isCompleteResponse(received: string): boolean {
  const headerEnd = received.indexOf('\r\n\r\n');
  if (headerEnd < 0) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(received.slice(0, headerEnd));
  return received.length - (headerEnd + 4) >= Number(length?.[1] ?? 0);
}

function openWithOneRequest(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = connect(port, host, () => {
      socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`);
    });
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new Error(`no answer on a held connection within ${CONNECTION_TIMEOUT_MS} ms`)),
      CONNECTION_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!isCompleteResponse(received)) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (!received.startsWith('HTTP/1.1 200')) {
        fail(new Error(`a held connection got ${received.split('\r\n')[0] ?? 'nothing'}`));
        return;
      }
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', () => fail(new Error('a held connection closed before its answer')));
  });
}
