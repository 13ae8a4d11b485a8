// The agent's admin HTTP endpoints: health, readiness, metrics, identity,
// policy and decision explanations. It reads state through callbacks and
// must not import inbound/, outbound/ or tls/.
export { AdminServer, type AdminSources, type WhyQuery } from './admin-server.js';
export { identityView, policyView, whyAnswer } from './agent-views.js';
