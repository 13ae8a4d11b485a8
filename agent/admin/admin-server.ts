import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { formatHostPort, listenOn, type HostPort } from '../../certs/host-port.js';
import { isSpiffeId } from '../../certs/spiffe-id.js';

/** What `/why` is asked: a peer, and optionally a request it might make. */
export interface WhyQuery {
  peer: string;
  /** HTTP method of the request to judge; default GET. */
  method?: string;
  /** Request target (path and query); with it the request rules are judged too. */
  path?: string;
  /** A bearer token to judge the request with (never logged). */
  token?: string;
}

/** What the admin endpoints report on; each is asked per request. */
export interface AdminSources {
  registry: Registry;
  isReady: () => boolean;
  identity: () => Record<string, unknown> | undefined;
  policy: () => Record<string, unknown>;
  why: (query: WhyQuery) => Promise<Record<string, unknown>>;
  /** Starts a graceful shutdown (POST /shutdown). */
  shutdown: () => void;
}

/**
 * The agent's admin HTTP endpoints, meant for localhost: `/healthz`,
 * `/readyz`, `/metrics`, `/identity`, `/policy`,
 * `/why?peer=SPIFFE_ID[&method=GET&path=/orders&token=JWT]` (the last three
 * judge one request by the HTTP rules and name the deciding rule), and
 * `POST /shutdown` so that a Job's main container can end its sidecar.
 */
export class AdminServer {
  private readonly server: Server;

  constructor(private readonly sources: AdminSources) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  }

  /** Starts listening; resolves with the bound address. */
  async start(listen: HostPort): Promise<string> {
    const port = await listenOn(this.server, listen);
    return formatHostPort({ host: listen.host, port });
  }

  /** Stops the server and ends idle keep-alive connections. */
  stop(): Promise<void> {
    this.server.closeIdleConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method ?? 'GET';
    if (url.pathname === '/shutdown') {
      if (method !== 'POST') return send(res, 405, { error: 'use POST' });
      send(res, 202, { shutdown: 'started' });
      this.sources.shutdown();
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, { error: 'use GET' });
    switch (url.pathname) {
      case '/healthz':
        return send(res, 200, { status: 'ok' });
      case '/readyz': {
        const ready = this.sources.isReady();
        return send(res, ready ? 200 : 503, { ready });
      }
      case '/metrics': {
        const body = await this.sources.registry.metrics();
        res.writeHead(200, { 'content-type': this.sources.registry.contentType }).end(body);
        return;
      }
      case '/identity': {
        const identity = this.sources.identity();
        return identity
          ? send(res, 200, identity)
          : send(res, 503, { error: 'no certificate yet' });
      }
      case '/policy':
        return send(res, 200, this.sources.policy());
      case '/why': {
        const peer = url.searchParams.get('peer') ?? '';
        if (!isSpiffeId(peer)) {
          return send(res, 400, {
            error: 'give ?peer=<SPIFFE ID>, e.g. spiffe://cluster.local/ns/shop/sa/web',
          });
        }
        const query: WhyQuery = { peer };
        for (const key of ['method', 'path', 'token'] as const) {
          const value = url.searchParams.get(key);
          if (value !== null) query[key] = value;
        }
        if (query.path !== undefined && !query.path.startsWith('/')) {
          return send(res, 400, { error: 'path must start with /, e.g. path=/orders' });
        }
        return send(res, 200, await this.sources.why(query));
      }
      default:
        return send(res, 404, { error: 'not found' });
    }
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}
