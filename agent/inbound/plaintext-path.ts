import type { Socket } from 'node:net';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics, Direction } from '../metrics.js';
import type { LiveConnections } from '../tls/index.js';
import type { AppForwarder } from './app-forwarder.js';
import type { AppTargets } from './app-target.js';
import type { RequestStage } from './inbound-deps.js';

const DIRECTION: Direction = 'inbound';

/** First byte of a TLS handshake record (RFC 8446 5.1, ContentType handshake). */
const TLS_HANDSHAKE_BYTE = 0x16;

/** What the plaintext path is given by the inbound proxy. */
export interface PlaintextDeps {
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
  requestStage: RequestStage | undefined;
  targets: AppTargets;
  forwarder: AppForwarder;
}

/**
 * Waits for the first byte of a paused accepted `socket`, puts it back, and
 * calls `route.tls` when it opens a TLS handshake record, `route.plaintext`
 * otherwise; the socket is left paused for whichever takes it over.
 */
export function routeByFirstByte(
  socket: Socket,
  route: { tls: (socket: Socket) => void; plaintext: (socket: Socket) => void },
): void {
  socket.once('data', (first: Buffer) => {
    socket.pause();
    socket.unshift(first);
    if (first[0] === TLS_HANDSHAKE_BYTE) route.tls(socket);
    else route.plaintext(socket);
  });
  socket.resume();
}

/**
 * Accepts a plaintext connection (permissive mode only; the caller checks):
 * logs and counts it, then forwards it to the application with no peer
 * identity, through the request stage when that judges its port.
 */
export function acceptPlaintext(deps: PlaintextDeps, socket: Socket): void {
  socket.setTimeout(0);
  const connId = deps.live.allocateId();
  deps.metrics.connections.inc({ direction: DIRECTION, result: 'plaintext' });
  deps.log.info(
    { direction: DIRECTION, conn_id: connId, peer_id: 'plaintext', mode: 'permissive' },
    'plaintext connection accepted',
  );

  // Plaintext gets the same request rules as mTLS peers, only with no identity.
  const stage = deps.requestStage;
  const appTarget = deps.targets.of(socket);
  if (stage?.judges(appTarget.port)) {
    deps.forwarder.serveRequests(stage, socket, appTarget, connId, undefined, () => undefined);
    return;
  }
  deps.forwarder.splice(
    deps.forwarder.dial(appTarget),
    socket,
    connId,
    'plaintext',
    () => undefined,
  );
}
