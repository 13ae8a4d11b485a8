// Admission policy of the sidecar: the mesh policy pushed by the CA in front
// of the workload's allow list, composed in one place, and decisions with
// their explanations. Pure except the file watcher and the PolicyState
// holder. Must not import inbound/, outbound/, tls/ or identity/.
export { compilePattern, type IdentityPattern } from '../../certs/policy/index.js';
export {
  buildWorkloadPolicy,
  DEFAULT_MODE,
  MODES,
  POLICY_VERSION_HEX_LENGTH,
  type Mode,
  type WorkloadPolicy,
  type WorkloadPolicyInput,
} from './workload-policy.js';
export { decide, evaluate, type Decision, type DecisionReason } from './decide.js';
export {
  isMeshVerdict,
  meshLayers,
  workloadLayers,
  type LayerVerdict,
  type MeshInForce,
  type PolicyLayer,
  type PolicyLayerName,
} from './policy-layer.js';
export {
  composePolicy,
  decideEffective,
  OPEN_MESH,
  type EffectivePolicy,
} from './effective-policy.js';
export {
  openWorkloadSource,
  type WorkloadSettings,
  type WorkloadSource,
} from './workload-source.js';
export { PolicyState, type MeshRejection, type PolicyStateDeps } from './policy-state.js';
export { MAX_POLICY_FILE_BYTES, parsePolicyDocument, type PolicyDocument } from './policy-file.js';
export {
  DEFAULT_POLICY_POLL_INTERVAL_MS,
  PolicyWatcher,
  type PolicyWatcherOptions,
} from './policy-watcher.js';
export {
  checkHttpSection,
  httpSectionFromText,
  judgesPort,
  DEFAULT_JWT_CLOCK_SKEW_SECONDS,
  MAX_JWT_CLOCK_SKEW_SECONDS,
  type HttpRule,
  type HttpSection,
  type HttpSectionResult,
  type HttpSettingName,
  type HttpSettingsText,
  type JwtSettings,
} from './http-section.js';
export { PolicyError, type PolicyErrorCode } from '../../certs/policy/index.js';
