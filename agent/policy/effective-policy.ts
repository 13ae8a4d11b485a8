import { checkMeshPolicy, OPEN_MESH_DOCUMENT, type Mode } from '../../certs/policy/index.js';
import { evaluate, type Decision } from './decide.js';
import { meshLayers, type MeshInForce, type PolicyLayer } from './policy-layer.js';
import type { WorkloadPolicy } from './workload-policy.js';

/** What an agent enforces before the CA has pushed any mesh policy (version 0). */
export const OPEN_MESH: MeshInForce = Object.freeze({
  version: 0,
  policy: openMeshPolicy(),
});

/**
 * The mesh policy and the workload policy composed for one workload, with
 * the layers built once: what every inbound decision and `/why` consult.
 * Immutable; a change of either policy makes a new one.
 */
export interface EffectivePolicy {
  readonly workload: WorkloadPolicy;
  readonly mesh: MeshInForce;
  /** The workload's own SPIFFE ID: the callee of every inbound decision. */
  readonly selfId: string;
  /** The mode enforced: `strict` when the mesh says so, else the workload's choice. */
  readonly mode: Mode;
  /** True when the workload asks for `permissive` and a strict mesh overrides it. */
  readonly isModeOverridden: boolean;
  readonly layers: readonly PolicyLayer[];
}

/**
 * Composes the policy in force. Precedence, fixed: a mesh deny rule beats
 * any workload allow; the workload's allow list, when present, decides the
 * rest; without one the mesh default decides. A strict mesh forces strict
 * mode whatever the workload asks.
 */
export function composePolicy(
  workload: WorkloadPolicy,
  mesh: MeshInForce,
  selfId: string,
  trustDomain: string,
): EffectivePolicy {
  const isModeOverridden = mesh.policy.mode === 'strict' && workload.mode === 'permissive';
  return Object.freeze({
    workload,
    mesh,
    selfId,
    mode: isModeOverridden ? 'strict' : workload.mode,
    isModeOverridden,
    layers: Object.freeze(meshLayers(workload, mesh, selfId, trustDomain)),
  });
}

/**
 * Decides whether `peerId` (verified by TLS) may call this workload under
 * `policy`. Allocates only the Decision; throws PolicyError
 * POLICY_LAYERS_INCOMPLETE only for a broken layer list.
 */
export function decideEffective(policy: EffectivePolicy, peerId: string): Decision {
  return evaluate(policy.layers, peerId);
}

function openMeshPolicy(): MeshInForce['policy'] {
  // The open document names no pattern, so the trust domain plays no part.
  const result = checkMeshPolicy({ ...OPEN_MESH_DOCUMENT }, 'open.invalid');
  if (!result.ok) throw new Error(`the open mesh policy is invalid: ${result.problems.join('; ')}`);
  return result.policy;
}
