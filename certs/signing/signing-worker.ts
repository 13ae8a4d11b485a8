// A worker thread that parses CSRs and signs leaf certificates, so that the
// CA's main thread spends its time on gRPC and the store. It holds the
// signing key in memory only, as the main thread does.
import type { KeyObject } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { errorCode, errorMessage } from '../errors.js';
import { loadIssuer, type Issuer } from '../x509/index.js';
import { signSvidRequest, type SvidRequest } from './svid-request.js';

/** Messages from the pool to a worker. */
export type ToWorker =
  | { type: 'issuer'; certPem: string; key: KeyObject }
  | { type: 'sign'; id: number; request: SvidRequest };

/** Messages from a worker to the pool. */
export type FromWorker =
  | {
      id: number;
      ok: true;
      spiffeId: string;
      serialHex: string;
      pem: string;
      notBeforeMs: number;
      notAfterMs: number;
      issuerSerialHex: string;
      issuerCertPem: string;
    }
  | { id: number; ok: false; code: string; message: string };

const trustDomain = (workerData as { trustDomain: string }).trustDomain;
let issuer: Issuer | undefined;

parentPort?.on('message', (message: ToWorker) => {
  if (message.type === 'issuer') {
    issuer = loadIssuer(message.certPem, message.key);
    return;
  }
  parentPort?.postMessage(answer(message.id, message.request));
});

function answer(id: number, request: SvidRequest): FromWorker {
  try {
    if (!issuer) throw new Error('signing worker has no issuer');
    const leaf = signSvidRequest(request, issuer, trustDomain);
    return {
      id,
      ok: true,
      spiffeId: leaf.spiffeId,
      serialHex: leaf.serialHex,
      pem: leaf.pem,
      notBeforeMs: leaf.notBefore.getTime(),
      notAfterMs: leaf.notAfter.getTime(),
      issuerSerialHex: leaf.issuerSerialHex,
      issuerCertPem: leaf.issuerCertPem,
    };
  } catch (err) {
    return { id, ok: false, code: errorCode(err), message: errorMessage(err) };
  }
}
