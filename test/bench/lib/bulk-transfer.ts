// Times one large download over a single connection: the app server streams
// `bytes` bytes of `/bulk` and the bench reads and discards them.
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { round } from './latency-summary.js';

/** Longest a bulk transfer may take before it is abandoned, in ms. */
const TRANSFER_TIMEOUT_MS = 120_000;

/** What one bulk transfer measured. */
export interface BulkResult {
  bytes: number;
  seconds: number;
  /** Throughput in megabytes (10^6 bytes) per second. */
  megabytesPerSecond: number;
}

/** Downloads `bytes` bytes from `http://<address>/bulk` on a fresh connection. */
export function runBulkTransfer(address: string, bytes: number): Promise<BulkResult> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let received = 0;
    const req = request(
      { host, port: Number(port), path: `/bulk?bytes=${bytes}`, agent: false },
      (res) => {
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
        });
        res.once('error', reject);
        res.once('end', () => {
          const seconds = (performance.now() - started) / 1000;
          if (received !== bytes) {
            reject(new Error(`bulk transfer got ${received} of ${bytes} bytes`));
            return;
          }
          resolve({
            bytes,
            seconds: round(seconds),
            megabytesPerSecond: round(bytes / 1e6 / seconds),
          });
        });
      },
    );
    req.setTimeout(TRANSFER_TIMEOUT_MS, () =>
      req.destroy(new Error(`bulk transfer timed out after ${TRANSFER_TIMEOUT_MS} ms`)),
    );
    req.once('error', reject);
    req.end();
  });
}
