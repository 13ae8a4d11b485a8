import { checkMeshPolicy, MAX_MESH_POLICY_BYTES, type MeshPolicy } from './mesh-policy.js';
import { invalidPolicy } from './policy-error.js';
import { readYamlValue } from './yaml-value.js';

/**
 * Parses a mesh policy document, YAML or JSON, as an operator writes it.
 * Throws PolicyError POLICY_INVALID naming every problem, `source` included;
 * an empty document is refused (write `{}` for the open policy).
 */
export function parseMeshPolicyText(text: string, source: string, trustDomain: string): MeshPolicy {
  if (Buffer.byteLength(text, 'utf8') > MAX_MESH_POLICY_BYTES) {
    throw invalidPolicy(source, [`document is larger than ${MAX_MESH_POLICY_BYTES} bytes`]);
  }
  const value = readYamlValue(text, source);
  if (value === null || value === undefined) {
    throw invalidPolicy(source, ['document is empty (write {} for the open mesh policy)']);
  }
  const result = checkMeshPolicy(value, trustDomain);
  if (!result.ok) throw invalidPolicy(source, result.problems);
  return result.policy;
}
