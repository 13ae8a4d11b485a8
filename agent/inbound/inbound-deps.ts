import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../../certs/host-port.js';
import type { Logger } from '../../certs/log.js';
import type { AgentMetrics } from '../metrics.js';
import type { Decision, Mode } from '../policy/index.js';
import type { LiveConnections, TlsContextHolder, TrustFacts } from '../tls/index.js';

/** Settings of the inbound listener. */
export interface InboundOptions {
  listen: HostPort;
  /**
   * Where the application listens, on localhost. Unset with transparent
   * interception: the redirected connection's original destination port
   * names the application port, on 127.0.0.1.
   */
  appAddr: HostPort | undefined;
  /** Ports the agent itself serves; an original destination on one of them is a loop. */
  agentPorts?: readonly number[];
  mode: () => Mode;
  /** How long a connection may stay silent or mid-handshake before it is dropped. */
  handshakeTimeoutMs: number;
  /** Most connections open at once; more are refused at accept. */
  maxConnections: number;
  trustDomain: string;
}

/**
 * A stage that serves allowed connections request by request (the HTTP
 * request rules) instead of the raw splice; only the active one is used.
 */
export interface RequestStage {
  /**
   * Whether connections to application port `appPort` are served request by
   * request; the others are spliced raw.
   */
  judges(appPort: number): boolean;
  /** Takes over `socket` (a TLS socket or a mux stream); `onClose` runs once it has closed. */
  serve(
    socket: Duplex,
    conn: { peerId: string | undefined; app: HostPort; connId: number },
    onClose: () => void,
  ): void;
}

/** What the inbound proxy is given by the composition root. */
export interface InboundDeps {
  tls: TlsContextHolder;
  trust: () => TrustFacts | undefined;
  admit: (peerId: string) => Decision;
  /**
   * Decides a peer without counting or logging: each new stream of a mux
   * session is checked again with it, so a session outlives no policy change.
   */
  recheck: (peerId: string) => Decision;
  live: LiveConnections;
  log: Logger;
  metrics: AgentMetrics;
  /** Reads a redirected connection's original destination (SO_ORIGINAL_DST), with interception. */
  originalDst?: (socket: Socket) => { address: string; port: number };
  /** Allowed connections to the ports it judges go through it rather than being spliced. */
  requestStage?: RequestStage;
}
