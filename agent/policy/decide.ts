import { PolicyError } from '../../certs/policy/index.js';
import { workloadLayers, type PolicyLayer, type PolicyLayerName } from './policy-layer.js';
import type { WorkloadPolicy } from './workload-policy.js';

/**
 * Why a peer was allowed or denied; stable, used in logs and metrics labels.
 * `mesh-deny` is a mesh deny rule; `mesh-default-deny` and
 * `outside-namespace` are the mesh defaults `deny` and `same-namespace`.
 */
export type DecisionReason =
  | 'allowed-by-rule'
  | 'mesh-default'
  | 'not-in-allow-list'
  | 'outside-trust-domain'
  | 'mesh-deny'
  | 'mesh-default-deny'
  | 'outside-namespace';

/** The outcome of checking one peer against the policy, with its explanation. */
export interface Decision {
  /** What is enforced: true also when the policy denies but runs in dry-run. */
  readonly allowed: boolean;
  /** The policy's own verdict, before dry-run: true when it denies the peer. */
  readonly wouldDeny: boolean;
  readonly reason: DecisionReason;
  /** The allow-list pattern or mesh rule (`deny[0] {...}`) that matched, if any. */
  readonly rule: string | undefined;
  readonly layer: PolicyLayerName;
  readonly dryRun: boolean;
  /** Version of the mesh policy in force when deciding; 0 while none is set. */
  readonly meshVersion: number;
  /** One sentence for `/why` and logs, naming the peer, the rule and the policy source. */
  readonly explanation: string;
}

// Layers built for each policy, so per-connection decisions reuse them.
const layerCache = new WeakMap<
  WorkloadPolicy,
  { trustDomain: string; layers: readonly PolicyLayer[] }
>();

/**
 * Asks each layer in order and returns the first verdict as a Decision; dry-run
 * verdicts are allowed but keep `wouldDeny`. Allocates only the result. Throws
 * PolicyError POLICY_LAYERS_INCOMPLETE when no layer decides, since a policy
 * that has no answer must not fall open.
 */
export function evaluate(layers: readonly PolicyLayer[], peerId: string): Decision {
  for (let i = 0; i < layers.length; i++) {
    const verdict = (layers[i] as PolicyLayer).judge(peerId);
    if (verdict === undefined) continue;
    return {
      allowed: verdict.allowed || verdict.dryRun,
      wouldDeny: !verdict.allowed,
      reason: verdict.reason,
      rule: verdict.rule,
      layer: verdict.layer,
      dryRun: verdict.dryRun,
      meshVersion: verdict.meshVersion,
      explanation: verdict.lead + peerId + verdict.because,
    };
  }
  throw new PolicyError(
    'POLICY_LAYERS_INCOMPLETE',
    `no policy layer decided ${JSON.stringify(peerId)}: the last layer must decide every peer`,
  );
}

/**
 * Decides whether `peerId` (a SPIFFE ID already verified by TLS) may connect
 * under the workload `policy` alone, with no mesh policy: with an allow list,
 * iff a pattern matches; without one, iff it is in `trustDomain`.
 * O(patterns); the layers are built on the first call for a policy and
 * cached. An agent decides with its EffectivePolicy, which adds the mesh.
 */
export function decide(policy: WorkloadPolicy, peerId: string, trustDomain: string): Decision {
  let cached = layerCache.get(policy);
  if (cached === undefined || cached.trustDomain !== trustDomain) {
    cached = { trustDomain, layers: workloadLayers(policy, trustDomain) };
    layerCache.set(policy, cached);
  }
  return evaluate(cached.layers, peerId);
}
