// The application behind the mesh: a tiny HTTP server answering every
// request with a 1 KiB body, and `/bulk?bytes=N` with N bytes. Run as its own
// process (this file is also its entry point) so that it never shares the
// bench's event loop, and so its CPU time can be told apart.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { spawnBenchChild, waitForLine, type BenchChild } from './bench-child.js';

/** Size of the ordinary response body, in bytes. */
export const SMALL_BODY_BYTES = 1024;

/** Size of each write of a bulk body, in bytes. */
const BULK_CHUNK_BYTES = 64 * 1024;

/** How long the app server may take to listen, in ms. */
const START_TIMEOUT_MS = 10_000;

/** The line the child prints once it listens, followed by its port. */
const LISTENING_PREFIX = 'app-server listening ';

const THIS_FILE = fileURLToPath(import.meta.url);

/** A running app server process. */
export interface AppServerProcess extends BenchChild {
  /** `127.0.0.1:<port>` the server listens on. */
  address: string;
  port: number;
}

/** Starts the app server as a child process on a port of the kernel's choice. */
export async function startAppServerProcess(): Promise<AppServerProcess> {
  const child = spawnBenchChild(process.execPath, [THIS_FILE, 'serve']);
  try {
    const port = await waitForLine(
      child,
      (line) =>
        line.startsWith(LISTENING_PREFIX) ? Number(line.slice(LISTENING_PREFIX.length)) : undefined,
      START_TIMEOUT_MS,
      'app server',
    );
    return { ...child, port, address: `127.0.0.1:${port}` };
  } catch (err) {
    await child.stop();
    throw new Error(`${(err as Error).message}\n${child.outputTail()}`, { cause: err });
  }
}

function serve(): void {
  const small = Buffer.alloc(SMALL_BODY_BYTES, 'p');
  const chunk = Buffer.alloc(BULK_CHUNK_BYTES, 'b');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    if (url.pathname !== '/bulk') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': small.length });
      res.end(small);
      return;
    }
    const total = Number(url.searchParams.get('bytes') ?? 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    let left = total;
    const pump = () => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  // Keep idle keep-alive connections open for the whole run, as wrk expects.
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${LISTENING_PREFIX}${(server.address() as AddressInfo).port}\n`);
  });
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close();
  });
}

if (process.argv[1] === THIS_FILE && process.argv[2] === 'serve') serve();
