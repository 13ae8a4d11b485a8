import type { DecisionReason } from './decide.js';
import { hasPrefixAt } from '../../certs/policy/index.js';
import type { WorkloadPolicy } from './workload-policy.js';

/** Where a verdict came from. The mesh layer pushed by the CA will join this list. */
export type PolicyLayerName = 'workload' | 'default';

/**
 * A layer's final word on a peer. Verdicts are built once per rule when the
 * layers are built, so deciding a connection allocates only the Decision.
 */
export interface LayerVerdict {
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  readonly rule: string | undefined;
  readonly layer: PolicyLayerName;
  readonly dryRun: boolean;
  /** The explanation's opening, before the peer ID, e.g. `allowed: `. */
  readonly lead: string;
  /** The explanation after the peer ID, e.g. ` matches 'ns/shop/*' of the allow list (flags)`. */
  readonly because: string;
}

/** One step of evaluation: decides a peer, or passes it to the next layer. */
export interface PolicyLayer {
  readonly name: PolicyLayerName;
  /** Returns this layer's verdict on `peerId`, or undefined to leave it to the next layer. */
  judge(peerId: string): LayerVerdict | undefined;
}

/**
 * Builds today's ordered layers for a workload policy: the allow list (which
 * decides every peer when present) and then the mesh default (peers of the
 * own trust domain only). The mesh layer will be placed in front of these.
 */
export function workloadLayers(policy: WorkloadPolicy, trustDomain: string): PolicyLayer[] {
  return [allowListLayer(policy), defaultLayer(policy, trustDomain)];
}

function allowListLayer(policy: WorkloadPolicy): PolicyLayer {
  const allow = policy.allow;
  if (allow === undefined) return { name: 'workload', judge: () => undefined };

  const from = ` of the allow list (${policy.source})`;
  const allowed = allow.map((pattern) =>
    verdict(
      policy,
      'workload',
      true,
      'allowed-by-rule',
      pattern.text,
      ` matches '${pattern.text}'${from}`,
    ),
  );
  const denied = verdict(
    policy,
    'workload',
    false,
    'not-in-allow-list',
    undefined,
    ` matches no pattern${from}`,
  );
  return {
    name: 'workload',
    judge: (peerId) => {
      for (let i = 0; i < allow.length; i++) {
        if ((allow[i] as (typeof allow)[number]).matches(peerId)) return allowed[i];
      }
      return denied;
    },
  };
}

function defaultLayer(policy: WorkloadPolicy, trustDomain: string): PolicyLayer {
  const prefix = `spiffe://${trustDomain}/`;
  const from = `no allow list is set (${policy.source})`;
  const inside = verdict(
    policy,
    'default',
    true,
    'mesh-default',
    undefined,
    ` is in trust domain ${trustDomain} and ${from}, so the mesh default applies`,
  );
  const outside = verdict(
    policy,
    'default',
    false,
    'outside-trust-domain',
    undefined,
    ` is outside trust domain ${trustDomain} and ${from}`,
  );
  return {
    name: 'default',
    judge: (peerId) => (hasPrefixAt(peerId, prefix, 0) ? inside : outside),
  };
}

function verdict(
  policy: WorkloadPolicy,
  layer: PolicyLayerName,
  allowed: boolean,
  reason: DecisionReason,
  rule: string | undefined,
  because: string,
): LayerVerdict {
  const lead = allowed ? 'allowed: ' : policy.dryRun ? 'would deny (dry run): ' : 'denied: ';
  return Object.freeze({ allowed, reason, rule, layer, dryRun: policy.dryRun, lead, because });
}
