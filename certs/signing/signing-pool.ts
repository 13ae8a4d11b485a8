import type { KeyObject } from 'node:crypto';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PalisadeError } from '../errors.js';
import { loadIssuer, type Issuer } from '../x509/index.js';
import type { FromWorker, ToWorker } from './signing-worker.js';
import { signSvidRequest, type SignedLeaf, type SvidRequest } from './svid-request.js';

interface Pending {
  resolve: (leaf: SignedLeaf) => void;
  reject: (err: Error) => void;
}

/**
 * Signs checked CSRs, inline (0 workers) or spread over worker threads.
 * Parsing a CSR and signing a leaf are most of a signing's CPU; a worker
 * moves them off the thread that serves gRPC and writes the store. Requests
 * go round-robin; a worker that dies fails its requests with SIGNER_FAILED
 * and is replaced.
 */
export class SigningPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private issuer: Issuer;
  private issuerKey: KeyObject;
  private nextId = 1;
  private nextWorker = 0;
  private isClosed = false;

  constructor(
    private readonly options: { workers: number; trustDomain: string },
    issuer: { certPem: string; key: KeyObject },
  ) {
    this.issuerKey = issuer.key;
    this.issuer = loadIssuer(issuer.certPem, issuer.key);
    for (let i = 0; i < options.workers; i++) this.workers.push(this.spawn());
  }

  /** The issuer signing now. */
  get current(): Issuer {
    return this.issuer;
  }

  /** Switches every signer to a new issuer; requests already sent finish with the old one. */
  useIssuer(certPem: string, key: KeyObject): Issuer {
    this.issuer = loadIssuer(certPem, key);
    this.issuerKey = key;
    for (const worker of this.workers)
      worker.postMessage({ type: 'issuer', certPem, key } satisfies ToWorker);
    return this.issuer;
  }

  /** Checks and signs one request; rejects with the PalisadeError code of the first problem. */
  sign(request: SvidRequest): Promise<SignedLeaf> {
    if (this.workers.length === 0) {
      try {
        return Promise.resolve(signSvidRequest(request, this.issuer, this.options.trustDomain));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const id = this.nextId++;
    const worker = this.workers[this.nextWorker++ % this.workers.length] as Worker;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ type: 'sign', id, request } satisfies ToWorker);
    });
  }

  /** Stops the workers; requests in flight fail. */
  async close(): Promise<void> {
    this.isClosed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.failAll('signing pool closed');
  }

  private spawn(): Worker {
    // Run the worker from the same tree as this module: .js when built, .ts under the test loader.
    const ext = extname(fileURLToPath(import.meta.url));
    const worker = new Worker(new URL(`./signing-worker${ext}`, import.meta.url), {
      workerData: { trustDomain: this.options.trustDomain },
    });
    worker.unref();
    worker.postMessage({
      type: 'issuer',
      certPem: this.issuer.certPem,
      key: this.issuerKey,
    } satisfies ToWorker);
    worker.on('message', (message: FromWorker) => this.settle(message));
    worker.on('error', () => this.replace(worker));
    worker.on('exit', () => this.replace(worker));
    return worker;
  }

  private settle(message: FromWorker): void {
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    if (message.ok) {
      pending.resolve({
        spiffeId: message.spiffeId,
        serialHex: message.serialHex,
        pem: message.pem,
        notBefore: new Date(message.notBeforeMs),
        notAfter: new Date(message.notAfterMs),
        issuerSerialHex: message.issuerSerialHex,
        issuerCertPem: message.issuerCertPem,
      });
    } else {
      pending.reject(new PalisadeError(message.code, message.message));
    }
  }

  private replace(dead: Worker): void {
    const index = this.workers.indexOf(dead);
    if (index === -1 || this.isClosed) return;
    // Which requests that worker held is not tracked per worker; fail them all
    // rather than leave any caller waiting forever.
    this.failAll('signing worker stopped');
    this.workers[index] = this.spawn();
  }

  private failAll(reason: string): void {
    for (const [id, pending] of this.pending) {
      pending.reject(new PalisadeError('SIGNER_FAILED', reason));
      this.pending.delete(id);
    }
  }
}
