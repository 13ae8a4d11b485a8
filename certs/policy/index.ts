// The policy both planes share: identity patterns and the mesh policy
// document the CA holds and pushes to every agent. Pure: parsing and
// validation only; the agent's decisions live in agent/policy/.
export { compilePattern, hasPrefixAt, type IdentityPattern } from './identity-pattern.js';
export {
  checkMeshPolicy,
  findMeshDeny,
  MAX_MESH_DENY_RULES,
  MAX_MESH_POLICY_BYTES,
  MESH_DEFAULTS,
  MODES,
  OPEN_MESH_DOCUMENT,
  parseMeshPolicyText,
  type MeshDefault,
  type MeshDenyRule,
  type MeshPolicy,
  type MeshPolicyDocument,
  type MeshPolicyResult,
  type Mode,
} from './mesh-policy.js';
export { invalidPolicy, PolicyError, type PolicyErrorCode } from './policy-error.js';
