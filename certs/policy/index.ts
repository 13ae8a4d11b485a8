// The policy both planes share: identity patterns and the mesh policy
// document the CA holds and pushes to every agent. Pure: parsing and
// validation only; the agent's decisions live in agent/policy/. The YAML
// parser loads only when a YAML or JSON text is first parsed (yaml-value.ts):
// checking a policy that arrived as a value needs none of it.
export { describeValue } from './describe-value.js';
export { compilePattern, hasPrefixAt, type IdentityPattern } from './identity-pattern.js';
export {
  checkMeshPolicy,
  findMeshDeny,
  MAX_MESH_DENY_RULES,
  MAX_MESH_POLICY_BYTES,
  MESH_DEFAULTS,
  MODES,
  OPEN_MESH_DOCUMENT,
  type MeshDefault,
  type MeshDenyRule,
  type MeshPolicy,
  type MeshPolicyDocument,
  type MeshPolicyResult,
  type Mode,
} from './mesh-policy.js';
export { parseMeshPolicyText } from './mesh-policy-text.js';
export { invalidPolicy, PolicyError, type PolicyErrorCode } from './policy-error.js';
export { readYamlValue } from './yaml-value.js';
