// The outbound proxy: the application's connections leave the pod only over
// mutual TLS to a verified peer. One dial path serves explicit upstreams and
// transparent interception. It must not import inbound/.
export {
  HandshakeFailedError,
  PeerDialer,
  PeerRejectedError,
  DEFAULT_DIAL_TIMEOUT_MS,
  type DialedPeer,
  type DialContext,
} from './dialer.js';
export {
  DEFAULT_SESSION_IDLE_MS,
  PeerSessions,
  type PeerChannel,
  type PeerLink,
  type PeerSessionsDeps,
} from './peer-sessions.js';
export { ExplicitUpstreams, type UpstreamDeps, type UpstreamSpec } from './upstreams.js';
export {
  TransparentOutbound,
  type TransparentDeps,
  type TransparentOptions,
} from './transparent.js';
