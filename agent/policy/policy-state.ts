import type { Logger } from '../../certs/log.js';
import type { Decision } from './decide.js';
import {
  composePolicy,
  decideEffective,
  OPEN_MESH,
  type EffectivePolicy,
} from './effective-policy.js';
import { isMeshVerdict, type MeshInForce, type PolicyLayerName } from './policy-layer.js';
import type { WorkloadPolicy } from './workload-policy.js';

/** A mesh policy version the agent could not compile; the last good one stays. */
export interface MeshRejection {
  readonly version: number;
  readonly problems: readonly string[];
}

/** What a PolicyState needs from the agent around it. */
export interface PolicyStateDeps {
  trustDomain: string;
  /** This workload's SPIFFE ID, the callee of every inbound decision. */
  selfId: string;
  log: Logger;
  /**
   * Closes the live inbound connections for which `reasonFor(peerId)`
   * returns a reason; returns how many it closed.
   */
  closeInbound: (reasonFor: (peerId: string) => string | undefined) => number;
  metrics?: {
    /** The mesh policy version in force, at every change. */
    meshVersion: (version: number) => void;
    /** One call per denial (or dry-run denial) of an inbound peer. */
    denial: (layer: PolicyLayerName, dryRun: boolean) => void;
  };
}

/**
 * The agent's policy in one place: the workload policy (flags or a watched
 * file) and the mesh policy (pushed by the CA) composed into an
 * EffectivePolicy, rebuilt when either changes. Each change closes the live
 * inbound connections the new policy forbids: `mesh-policy-denied` when a
 * mesh verdict forbids them, `policy-denied` when the workload's does.
 * Logs `policy.applied`, `policy.mesh_applied`, `policy.mesh_rejected` and
 * `policy.mode_overridden` events.
 */
export class PolicyState {
  readonly #deps: PolicyStateDeps;
  #current: EffectivePolicy;
  #rejection: MeshRejection | undefined;

  constructor(workload: WorkloadPolicy, deps: PolicyStateDeps) {
    this.#deps = deps;
    this.#current = composePolicy(workload, OPEN_MESH, deps.selfId, deps.trustDomain);
    deps.metrics?.meshVersion(0);
  }

  /** The policy in force. */
  get current(): EffectivePolicy {
    return this.#current;
  }

  /** Decides an inbound peer and counts a denial by layer; the inbound proxy's admission check. */
  admit(peerId: string): Decision {
    const decision = decideEffective(this.#current, peerId);
    if (decision.wouldDeny) this.#deps.metrics?.denial(decision.layer, decision.dryRun);
    return decision;
  }

  /** Decides `peerId` without counting anything, for `/why`. */
  explain(peerId: string): Decision {
    return decideEffective(this.#current, peerId);
  }

  /**
   * Replaces the workload policy and closes the inbound connections it now
   * forbids, or for which `alsoClose` names a reason. Returns how many closed.
   */
  setWorkload(next: WorkloadPolicy, alsoClose?: (peerId: string) => string | undefined): number {
    const policy = this.#replace(
      composePolicy(next, this.#current.mesh, this.#deps.selfId, this.#deps.trustDomain),
    );
    const closed = this.#closeForbidden(policy, alsoClose);
    this.#deps.log.info(
      {
        event: 'policy.applied',
        source: next.source,
        version: next.version,
        mode: policy.mode,
        mesh_version: policy.mesh.version,
        closed,
      },
      'policy applied',
    );
    return closed;
  }

  /**
   * Applies the mesh policy of a trust state: `mesh` undefined is the open
   * policy (version 0). A new version takes effect at once and closes what
   * it forbids; the same one is a no-op. `rejection` names a version that did
   * not compile (logged once); `mesh` is then the last good policy, kept.
   */
  applyMesh(mesh: MeshInForce | undefined, rejection: MeshRejection | undefined): void {
    const { log } = this.#deps;
    const inForce = mesh ?? OPEN_MESH;
    if (rejection !== undefined && rejection !== this.#rejection) {
      log.error(
        {
          event: 'policy.mesh_rejected',
          version: rejection.version,
          kept_version: inForce.version,
          err_code: 'POLICY_INVALID',
          reason: rejection.problems.join('; '),
        },
        'mesh policy rejected, keeping the one in force',
      );
    }
    this.#rejection = rejection;
    const previous = this.#current;
    if (inForce === previous.mesh || inForce.version === previous.mesh.version) return;

    const policy = this.#replace(
      composePolicy(previous.workload, inForce, this.#deps.selfId, this.#deps.trustDomain),
    );
    const closed = this.#closeForbidden(policy, undefined);
    this.#deps.metrics?.meshVersion(inForce.version);
    log.info(
      {
        event: 'policy.mesh_applied',
        version: inForce.version,
        previous_version: previous.mesh.version,
        mode: inForce.policy.mode,
        default: inForce.policy.default,
        deny_rules: inForce.policy.deny.length,
        closed,
      },
      'mesh policy applied',
    );
  }

  #replace(next: EffectivePolicy): EffectivePolicy {
    const previous = this.#current;
    this.#current = next;
    const isNewOverride =
      next.isModeOverridden && (!previous.isModeOverridden || previous.workload !== next.workload);
    if (isNewOverride) {
      this.#deps.log.warn(
        {
          event: 'policy.mode_overridden',
          requested_mode: next.workload.mode,
          mode: next.mode,
          source: next.workload.source,
          mesh_version: next.mesh.version,
        },
        'workload mode overridden by the mesh policy',
      );
    }
    return next;
  }

  #closeForbidden(
    policy: EffectivePolicy,
    alsoClose: ((peerId: string) => string | undefined) | undefined,
  ): number {
    return this.#deps.closeInbound((peerId) => {
      const decision = decideEffective(policy, peerId);
      if (!decision.allowed)
        return isMeshVerdict(decision) ? 'mesh-policy-denied' : 'policy-denied';
      return alsoClose?.(peerId);
    });
  }
}
