// Admission policy of the sidecar: identity patterns, the workload's allow
// list, and decisions with their explanations. Pure except the file watcher.
// Must not import inbound/, outbound/ or tls/: they call in, never the reverse.
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
  workloadLayers,
  type LayerVerdict,
  type PolicyLayer,
  type PolicyLayerName,
} from './policy-layer.js';
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
