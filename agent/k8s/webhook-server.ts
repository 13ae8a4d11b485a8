import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { HostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import { answerAdmissionReview } from './admission-review.js';
import type { MeshSettings } from './mesh-settings.js';

/** Reviews larger than this are refused with 413; Kubernetes objects stay under 1.5 MiB. */
export const MAX_REVIEW_BYTES = 3 * 1024 * 1024;

/** Default listen address of `palisade webhook`. */
export const DEFAULT_WEBHOOK_LISTEN = '0.0.0.0:15443';

/** What the webhook server is built from. */
export interface WebhookServerOptions {
  settings: MeshSettings;
  /** PEM certificate chain and key the webhook serves HTTPS with. */
  tlsCertPem: string;
  tlsKeyPem: string;
  /** The process's metrics registry; the webhook adds its metrics to it. */
  registry: Registry;
  logger: Logger;
}

/** A running webhook: its address and how to stop it. */
export interface WebhookServer {
  readonly server: Server;
  /** Starts listening; resolves with the bound address (port 0 picks one). */
  listen(address: HostPort): Promise<AddressInfo>;
  /** Stops accepting and closes idle connections. */
  close(): Promise<void>;
}

/**
 * Builds the HTTPS admission webhook: `POST /mutate` answers AdmissionReviews,
 * `GET /healthz` answers 200, `GET /metrics` serves `registry`.
 */
export function createWebhookServer(options: WebhookServerOptions): WebhookServer {
  const { settings, registry, logger } = options;
  const reviews = new Counter({
    name: 'palisade_webhook_reviews_total',
    help: 'Admission reviews answered, by result',
    labelNames: ['result'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'palisade_webhook_review_duration_seconds',
    help: 'Time to answer one admission review',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5],
    registers: [registry],
  });

  const server = createServer(
    { cert: options.tlsCertPem, key: options.tlsKeyPem, minVersion: 'TLSv1.2' },
    (req, res) => {
      const send = (status: number, type: string, body: string) => {
        res.writeHead(status, { 'content-type': type }).end(body);
      };
      const url = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && url === '/healthz') return send(200, 'text/plain', 'ok\n');
      if (req.method === 'GET' && url === '/metrics') {
        void registry.metrics().then(
          (text) => send(200, registry.contentType, text),
          () => send(500, 'text/plain', 'metrics unavailable\n'),
        );
        return;
      }
      if (url !== '/mutate') return send(404, 'text/plain', 'not found\n');
      if (req.method !== 'POST') return send(405, 'text/plain', 'use POST\n');

      const stop = duration.startTimer();
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_REVIEW_BYTES) {
          reviews.inc({ result: 'malformed' });
          send(413, 'text/plain', 'review too large\n');
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined; // Not JSON: answered below as a malformed review.
        }
        const answer = answerAdmissionReview(body, settings);
        stop();
        if (!answer.ok) {
          reviews.inc({ result: 'malformed' });
          logger.warn({ reason: answer.reason }, 'malformed admission review');
          return send(400, 'text/plain', `${answer.reason}\n`);
        }
        reviews.inc({ result: answer.result });
        const request = (body as { request: Record<string, unknown> }).request;
        const fields = { result: answer.result, namespace: request.namespace, uid: request.uid };
        if (answer.result === 'refused') {
          const response = answer.review.response as { status: { message: string } };
          logger.info(
            { ...fields, event: 'injection.refused', reason: response.status.message },
            'pod refused',
          );
        } else {
          logger.debug(fields, 'admission review answered');
        }
        send(200, 'application/json', JSON.stringify(answer.review));
      });
    },
  );

  return {
    server,
    listen: (address) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(address.port, address.host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
