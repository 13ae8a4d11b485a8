// The inbound proxy: peers reach the application only through here, after
// mutual TLS, verification and policy. It must not import outbound/.
export {
  InboundProxy,
  type InboundDeps,
  type InboundOptions,
  type RequestStage,
} from './inbound-proxy.js';
