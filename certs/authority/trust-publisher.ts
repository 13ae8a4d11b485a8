import type { Logger } from '../log.js';
import type { MeshPolicyState } from '../mesh-policy-state.js';
import type { CaMetrics } from '../metrics.js';
import type { CaStore, MeshPolicyVersion, RevocationSet } from '../store/index.js';

/** One published state of the trust bundle, revocation set and mesh policy. */
export interface TrustState {
  version: number;
  trustBundlePem: string[];
  revokedSerials: string[];
  revokedIds: string[];
  /** The mesh policy in force; version 0 (the open policy) until one is set. */
  meshPolicy: MeshPolicyVersion;
  publishedAt: Date;
}

/** Called with every new trust state, synchronously, in subscription order. */
export type TrustListener = (state: TrustState) => void;

/**
 * Holds the trust state every agent watches and hands each new one to the
 * listeners (the WatchTrust streams). The state is read from the store, so
 * it is only published once the change behind it is durable.
 */
export class TrustPublisher {
  /** The trust bundle, one PEM certificate per entry. */
  readonly trustBundlePem: string[];
  private readonly store: CaStore;
  private readonly mesh: MeshPolicyState;
  private readonly log: Logger;
  private readonly metrics: CaMetrics;
  private readonly now: () => Date;
  private readonly listeners = new Set<TrustListener>();
  private held: TrustState;

  /** Reads the current state from the store and sets the trust version gauge. */
  constructor(deps: {
    trustBundlePem: string[];
    store: CaStore;
    mesh: MeshPolicyState;
    log: Logger;
    metrics: CaMetrics;
    now: () => Date;
  }) {
    this.trustBundlePem = deps.trustBundlePem;
    this.store = deps.store;
    this.mesh = deps.mesh;
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.now = deps.now;
    this.held = this.computeState();
    this.metrics.trustVersion.set(this.held.version);
  }

  /** The trust state agents should hold now. */
  get state(): TrustState {
    return this.held;
  }

  /** How many listeners are subscribed. */
  get watcherCount(): number {
    return this.listeners.size;
  }

  /** Registers a listener for every new trust state; returns the unsubscribe function. */
  subscribe(listener: TrustListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Re-reads the state (or takes `set`, read by the caller in one snapshot
   * with its version), logs `trust.updated` and hands it to every listener.
   */
  publish(set?: RevocationSet): void {
    this.held = this.computeState(set);
    this.metrics.trustVersion.set(this.held.version);
    this.log.info(
      {
        event: 'trust.updated',
        version: this.held.version,
        revoked_serials: this.held.revokedSerials.length,
        revoked_ids: this.held.revokedIds.length,
        mesh_policy_version: this.held.meshPolicy.version,
        watchers: this.listeners.size,
      },
      'trust state published',
    );
    for (const listener of this.listeners) listener(this.held);
  }

  /** Drops revoked serials whose certificates expired, publishing a new version if any left. */
  sweepExpired(): void {
    const next = this.store.revocationSet(this.now());
    if (sameMembers(next.serials, this.held.revokedSerials)) return;
    const version = this.store.bumpTrustVersion('revocations.expired');
    this.publish({ ...next, version });
  }

  private computeState(set = this.store.revocationSet(this.now())): TrustState {
    return {
      version: set.version,
      trustBundlePem: this.trustBundlePem,
      revokedSerials: set.serials,
      revokedIds: set.identities,
      meshPolicy: this.mesh.current.record,
      publishedAt: this.now(),
    };
  }
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}
