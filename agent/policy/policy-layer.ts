import type { MeshPolicy } from '../../certs/policy/index.js';
import { hasPrefixAt, type IdentityPattern, type MeshDenyRule } from '../../certs/policy/index.js';
import type { DecisionReason } from './decide.js';
import type { WorkloadPolicy } from './workload-policy.js';

/** Where a verdict came from: a mesh deny rule, the workload's allow list, or the default. */
export type PolicyLayerName = 'mesh' | 'workload' | 'default';

/**
 * The mesh policy an agent enforces: the CA's version (0 while none was set)
 * and the compiled document. Structurally what the identity's trust snapshot
 * carries, so policy/ needs no import from identity/.
 */
export interface MeshInForce {
  readonly version: number;
  readonly policy: MeshPolicy;
  /** When the operator set it, Unix milliseconds; absent for the open policy. */
  readonly setUnixMs?: number;
  /** The admin identity that set it. */
  readonly setBy?: string;
}

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
  /** Version of the mesh policy the verdict was built under; 0 for none. */
  readonly meshVersion: number;
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
 * Builds the workload's own layers with no mesh policy: the allow list (which
 * decides every peer when present) and then the default (peers of the own
 * trust domain only). This is what an agent enforces before any mesh policy
 * is set.
 */
export function workloadLayers(policy: WorkloadPolicy, trustDomain: string): PolicyLayer[] {
  return [allowListLayer(policy, 0), defaultLayer(policy, trustDomain, undefined, undefined)];
}

/**
 * Builds the ordered layers of the inbound decision for the workload `selfId`:
 * the mesh deny rules whose `to` matches `selfId` (a match denies, whatever
 * the allow list says), then the workload's allow list (decides every other
 * peer when present), then the mesh default (`deny`, `same-namespace` or
 * `mesh`). Mesh verdicts ignore the workload's dry run: a workload can never
 * loosen what the mesh denies.
 */
export function meshLayers(
  policy: WorkloadPolicy,
  mesh: MeshInForce,
  selfId: string,
  trustDomain: string,
): PolicyLayer[] {
  if (mesh.version === 0 && mesh.policy.deny.length === 0 && mesh.policy.default === 'mesh') {
    return workloadLayers(policy, trustDomain);
  }
  return [
    meshDenyLayer(mesh, selfId),
    allowListLayer(policy, mesh.version),
    defaultLayer(policy, trustDomain, mesh, selfId),
  ];
}

/** Whether a denial came from the mesh policy rather than from the workload. */
export function isMeshVerdict(verdict: {
  layer: PolicyLayerName;
  reason: DecisionReason;
}): boolean {
  return (
    verdict.layer === 'mesh' ||
    verdict.reason === 'mesh-default-deny' ||
    verdict.reason === 'outside-namespace'
  );
}

function meshDenyLayer(mesh: MeshInForce, selfId: string): PolicyLayer {
  // Only rules that can ever name this workload as the callee are kept, so a
  // connection is matched against its callers' patterns alone.
  const rules = mesh.policy.deny.filter((rule) => rule.to.matches(selfId));
  if (rules.length === 0) return { name: 'mesh', judge: () => undefined };

  const verdicts = rules.map((rule) =>
    frozenVerdict(
      false,
      'mesh-deny',
      rule.text,
      'mesh',
      false,
      mesh.version,
      'denied: ',
      ` may not call ${selfId}: mesh rule ${rule.text} (mesh policy v${mesh.version})`,
    ),
  );
  return {
    name: 'mesh',
    judge: (peerId) => {
      for (let i = 0; i < rules.length; i++) {
        const rule = rules[i] as MeshDenyRule;
        if (rule.from.matches(peerId) && !matchesAny(rule.except, peerId)) return verdicts[i];
      }
      return undefined;
    },
  };
}

function allowListLayer(policy: WorkloadPolicy, meshVersion: number): PolicyLayer {
  const allow = policy.allow;
  if (allow === undefined) return { name: 'workload', judge: () => undefined };

  const from = ` of the allow list (${policy.source})`;
  const allowed = allow.map((pattern) =>
    verdict(
      policy,
      meshVersion,
      'workload',
      true,
      'allowed-by-rule',
      pattern.text,
      ` matches '${pattern.text}'${from}`,
    ),
  );
  const denied = verdict(
    policy,
    meshVersion,
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
        if ((allow[i] as IdentityPattern).matches(peerId)) return allowed[i];
      }
      return denied;
    },
  };
}

/**
 * The last layer, for workloads without an allow list. Without a mesh policy
 * it admits the own trust domain (today's behaviour, dry run included);
 * under one it applies the mesh default, whose denials are enforced.
 */
function defaultLayer(
  policy: WorkloadPolicy,
  trustDomain: string,
  mesh: MeshInForce | undefined,
  selfId: string | undefined,
): PolicyLayer {
  const version = mesh?.version ?? 0;
  const meshDefault = mesh?.policy.default ?? 'mesh';
  const prefix = `spiffe://${trustDomain}/`;
  const from = `no allow list is set (${policy.source})`;
  const under = version === 0 ? '' : ` (${meshDefault}, mesh policy v${version})`;
  const outside = verdict(
    policy,
    version,
    'default',
    false,
    'outside-trust-domain',
    undefined,
    ` is outside trust domain ${trustDomain} and ${from}`,
  );

  if (meshDefault === 'deny') {
    const denied = frozenVerdict(
      false,
      'mesh-default-deny',
      undefined,
      'default',
      false,
      version,
      'denied: ',
      ` is refused: ${from} and the mesh default is deny (mesh policy v${version})`,
    );
    return { name: 'default', judge: () => denied };
  }

  const inside = verdict(
    policy,
    version,
    'default',
    true,
    'mesh-default',
    undefined,
    ` is in trust domain ${trustDomain} and ${from}, so the mesh default${under} applies`,
  );
  if (meshDefault === 'mesh') {
    return {
      name: 'default',
      judge: (peerId) => (hasPrefixAt(peerId, prefix, 0) ? inside : outside),
    };
  }

  // same-namespace: a workload whose own ID names no namespace has no peers.
  const namespace = selfId === undefined ? undefined : namespacePrefix(selfId, prefix);
  const sameNamespace = verdict(
    policy,
    version,
    'default',
    true,
    'mesh-default',
    undefined,
    ` is in this workload's namespace and ${from}, so the mesh default${under} applies`,
  );
  const otherNamespace = frozenVerdict(
    false,
    'outside-namespace',
    undefined,
    'default',
    false,
    version,
    'denied: ',
    ` is outside this workload's namespace, ${from} and the mesh default is same-namespace ` +
      `(mesh policy v${version})`,
  );
  return {
    name: 'default',
    judge: (peerId) => {
      if (!hasPrefixAt(peerId, prefix, 0)) return outside;
      return namespace !== undefined && hasPrefixAt(peerId, namespace, 0)
        ? sameNamespace
        : otherNamespace;
    },
  };
}

/** `spiffe://<td>/ns/<namespace>/` of an ID of the form `.../ns/<namespace>/...`, if it is one. */
function namespacePrefix(spiffeId: string, trustDomainPrefix: string): string | undefined {
  if (!spiffeId.startsWith(`${trustDomainPrefix}ns/`)) return undefined;
  const start = trustDomainPrefix.length + 3;
  const end = spiffeId.indexOf('/', start);
  if (end <= start) return undefined;
  return spiffeId.slice(0, end + 1);
}

function matchesAny(patterns: readonly IdentityPattern[], peerId: string): boolean {
  for (let i = 0; i < patterns.length; i++) {
    if ((patterns[i] as IdentityPattern).matches(peerId)) return true;
  }
  return false;
}

/** A verdict of the workload's own making: its dry run turns a denial into a warning. */
function verdict(
  policy: WorkloadPolicy,
  meshVersion: number,
  layer: PolicyLayerName,
  allowed: boolean,
  reason: DecisionReason,
  rule: string | undefined,
  because: string,
): LayerVerdict {
  const lead = allowed ? 'allowed: ' : policy.dryRun ? 'would deny (dry run): ' : 'denied: ';
  return frozenVerdict(allowed, reason, rule, layer, policy.dryRun, meshVersion, lead, because);
}

function frozenVerdict(
  allowed: boolean,
  reason: DecisionReason,
  rule: string | undefined,
  layer: PolicyLayerName,
  dryRun: boolean,
  meshVersion: number,
  lead: string,
  because: string,
): LayerVerdict {
  return Object.freeze({ allowed, reason, rule, layer, dryRun, meshVersion, lead, because });
}
