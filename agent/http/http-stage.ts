import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';

import type { HostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics } from '../metrics.js';
import type { HttpSection } from '../policy/index.js';
import { judgeRequest, type HttpVerdict } from './judge-request.js';
import { TokenVerifier, type TokenVerifierOptions } from './token-verifier.js';

/** Prefix of the headers the agent sets; any incoming header with it is dropped. */
export const FORWARDED_HEADER_PREFIX = 'x-palisade-';

/** Idle keep-alive connections kept open to the application, per application port. */
const UPSTREAM_MAX_FREE_SOCKETS = 64;

// RFC 9110 7.6.1: connection-specific headers are not forwarded. `expect` is
// answered by the agent's own server, so the application never sees it.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

/** One connection handed to the stage, already past mTLS and the allow list. */
export interface HttpConnection {
  /** The verified SPIFFE ID; undefined for plaintext accepted in permissive mode. */
  readonly peerId: string | undefined;
  readonly app: HostPort;
  readonly connId: number;
}

/** What the HTTP stage is built with. */
export interface HttpStageDeps {
  log: Logger;
  metrics: AgentMetrics;
  /** Options for the token verifier besides the jwt settings (clock, limits), for tests. */
  verifierOptions?: Omit<TokenVerifierOptions, 'jwt'>;
}

/**
 * The HTTP/1.1 request stage of the inbound side: parses requests on a
 * verified connection with Node's HTTP server, decides each by the policy's
 * request rules and bearer token, answers refusals itself (401, 403, 400 or
 * 503 with a short JSON body) and forwards the rest to the application over
 * pooled keep-alive connections, with `x-palisade-*` headers replaced by the
 * verified facts. Logs `http.denied` events and counts denials by reason.
 */
export class HttpStage {
  private readonly server: Server;
  private readonly upstream = new Agent({
    keepAlive: true,
    maxFreeSockets: UPSTREAM_MAX_FREE_SOCKETS,
  });
  private readonly connections = new WeakMap<Duplex, HttpConnection>();
  private section: HttpSection | undefined;
  private verifierInUse: TokenVerifier | undefined;

  constructor(private readonly deps: HttpStageDeps) {
    this.server = createServer({ keepAlive: true }, (req, res) => {
      this.onRequest(req, res).catch((err: unknown) => {
        this.deps.log.error({ reason: String(err) }, 'http request handling failed');
        if (!res.headersSent) sendJson(res, 502, { error: 'internal' });
        else res.destroy();
      });
    });
  }

  /** Whether requests are being judged: true once a section with rules is configured. */
  get isActive(): boolean {
    return this.section !== undefined;
  }

  /** The token verifier in use; undefined when the section has no jwt settings. */
  get verifier(): TokenVerifier | undefined {
    return this.verifierInUse;
  }

  /** The section in force. */
  get current(): HttpSection | undefined {
    return this.section;
  }

  /**
   * Puts a policy's http section in force (undefined turns the stage off for
   * new connections). The verifier and its cached keys are kept when the
   * jwt settings did not change.
   */
  configure(section: HttpSection | undefined): void {
    const jwt = section?.jwt;
    if (jwt === undefined) {
      this.verifierInUse = undefined;
    } else if (JSON.stringify(this.verifierInUse?.jwt) !== JSON.stringify(jwt)) {
      this.verifierInUse = new TokenVerifier({ ...this.deps.verifierOptions, jwt });
    }
    this.section = section;
  }

  /** Serves HTTP on `socket` until it closes; `onClose` runs once it has. */
  serve(socket: Duplex, conn: HttpConnection, onClose: () => void): void {
    this.connections.set(socket, conn);
    socket.once('close', onClose);
    this.server.emit('connection', socket);
    socket.resume();
  }

  /** Closes idle connections to the application. */
  close(): void {
    this.upstream.destroy();
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const conn = this.connections.get(req.socket);
    const section = this.section;
    if (conn === undefined || section === undefined) {
      sendJson(res, 503, { error: 'http-rules-unavailable' });
      return;
    }

    const verdict = await judgeRequest(section, this.verifierInUse, {
      method: req.method ?? 'GET',
      target: req.url ?? '',
      peerId: conn.peerId,
      authorization: req.headers.authorization,
    });
    if (!verdict.allowed) {
      this.refuse(req, res, conn, verdict);
      return;
    }
    this.deps.metrics.httpRequests.inc({ result: 'allowed' });
    this.forward(req, res, conn, verdict);
  }

  private refuse(
    req: IncomingMessage,
    res: ServerResponse,
    conn: HttpConnection,
    verdict: Extract<HttpVerdict, { allowed: false }>,
  ): void {
    this.deps.metrics.httpRequests.inc({ result: 'denied' });
    this.deps.metrics.httpDenials.inc({ reason: verdict.reason });
    this.deps.log.warn(
      {
        event: 'http.denied',
        direction: 'inbound',
        conn_id: conn.connId,
        peer_id: conn.peerId ?? 'plaintext',
        method: req.method,
        path: (req.url ?? '').split('?', 1)[0],
        status: verdict.status,
        reason: verdict.reason,
        rule: verdict.rule?.name ?? null,
        client_id: verdict.claims?.clientId ?? null,
        sub: verdict.claims?.sub ?? null,
        missing_scope: verdict.missingScope ?? null,
      },
      'request denied',
    );

    const headers: OutgoingHttpHeaders = {};
    if (verdict.status === 401) {
      // RFC 6750 3: a request without a token gets the bare challenge.
      headers['www-authenticate'] = verdict.tokenGiven
        ? `Bearer error="invalid_token", error_description="${verdict.reason}"`
        : 'Bearer';
    } else if (verdict.reason === 'missing-scope') {
      headers['www-authenticate'] =
        `Bearer error="insufficient_scope", scope="${verdict.missingScope ?? ''}"`;
    }
    const body: Record<string, string> = { error: verdict.reason };
    if (verdict.rule) body['rule'] = verdict.rule.name;
    if (verdict.missingScope !== undefined) body['missing_scope'] = verdict.missingScope;
    // The refused request's body is read and dropped so the connection can carry the next one.
    req.resume();
    sendJson(res, verdict.status, body, headers);
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    conn: HttpConnection,
    verdict: Extract<HttpVerdict, { allowed: true }>,
  ): void {
    const headers = forwardedHeaders(req.headersDistinct);
    if (conn.peerId !== undefined) headers['x-palisade-peer-id'] = conn.peerId;
    const claims = verdict.claims;
    if (claims?.sub !== undefined) headers['x-palisade-sub'] = claims.sub;
    if (claims?.clientId !== undefined) headers['x-palisade-client-id'] = claims.clientId;
    if (claims !== undefined) headers['x-palisade-scope'] = claims.scopes.join(' ');

    const upstream = httpRequest({
      host: conn.app.host,
      port: conn.app.port,
      method: req.method,
      path: req.url,
      headers,
      agent: this.upstream,
      setHost: false,
    });
    upstream.on('response', (appRes) => {
      res.writeHead(
        appRes.statusCode ?? 502,
        appRes.statusMessage,
        forwardedHeaders(appRes.headersDistinct),
      );
      appRes.pipe(res);
      appRes.once('error', () => res.destroy());
    });
    upstream.on('error', (err) => {
      this.deps.log.error(
        {
          direction: 'inbound',
          conn_id: conn.connId,
          peer_id: conn.peerId ?? 'plaintext',
          err_code: 'APP_UNREACHABLE',
          reason: err.message,
        },
        'application request failed',
      );
      if (!res.headersSent) sendJson(res, 502, { error: 'app-unreachable' });
      else res.destroy();
    });
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }
}

/**
 * Copies headers minus hop-by-hop ones, those the `Connection` header names,
 * and every `x-palisade-*` header, which only the agent may set.
 */
function forwardedHeaders(headers: Record<string, string[] | undefined>): OutgoingHttpHeaders {
  const named = new Set(
    (headers['connection'] ?? []).flatMap((v) => v.split(',')).map((v) => v.trim().toLowerCase()),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, values] of Object.entries(headers)) {
    if (values === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (name.startsWith(FORWARDED_HEADER_PREFIX)) continue;
    out[name] = values.length === 1 ? values[0] : values;
  }
  return out;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    })
    .end(text);
}
