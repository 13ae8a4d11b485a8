import type { Logger } from '../log.js';
import { IssuanceRecorder } from '../issuance-recorder.js';
import type { MeshPolicyState } from '../mesh-policy-state.js';
import { checkWorkloadId, type SignedLeaf, type SigningPool } from '../signing/index.js';
import type { CaStore, IssuedVia } from '../store/index.js';
import type { Entitlements, Proof } from './entitlements.js';
import { clampTtl, notAfterOf, type AuthorityOptions } from './lifetime.js';
import type { TrustPublisher } from './trust-publisher.js';

/** A freshly signed certificate with what the workload needs to use it. */
export interface SignedChain {
  spiffeId: string;
  serialHex: string;
  /** Leaf first, then the intermediate. */
  chainPem: string[];
  trustBundlePem: string[];
  notBefore: Date;
  notAfter: Date;
  trustVersion: number;
}

/**
 * Issues leaf certificates: checks who asks for which identity, clamps the
 * lifetime to every limit in force, signs, and answers only once the
 * certificate is recorded durably (group commit) and `cert.issued` logged.
 */
export class Issuance {
  private readonly options: AuthorityOptions;
  private readonly signer: SigningPool;
  private readonly recorder: IssuanceRecorder;
  private readonly entitlements: Entitlements;
  private readonly mesh: MeshPolicyState;
  private readonly publisher: TrustPublisher;
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(deps: {
    options: AuthorityOptions;
    store: CaStore;
    signer: SigningPool;
    entitlements: Entitlements;
    mesh: MeshPolicyState;
    publisher: TrustPublisher;
    log: Logger;
    now: () => Date;
  }) {
    this.options = deps.options;
    this.signer = deps.signer;
    this.recorder = new IssuanceRecorder(deps.store);
    this.entitlements = deps.entitlements;
    this.mesh = deps.mesh;
    this.publisher = deps.publisher;
    this.log = deps.log;
    this.now = deps.now;
  }

  /** Signs a workload's CSR for the identity its proof entitles; spends the proof last. */
  async signForWorkload(request: {
    csrPem: string;
    ttlSeconds: number;
    proof: Proof;
  }): Promise<SignedChain> {
    const entitled = await this.entitlements.entitledId(request.proof);
    this.entitlements.checkNotRevoked(entitled.spiffeId);
    const ttlSeconds = this.ttlFor(request.ttlSeconds);
    const leaf = await this.signer.sign({
      csrPem: request.csrPem,
      expectedId: entitled.spiffeId,
      ttlSeconds,
      nowMs: this.now().getTime(),
    });
    // A single-use proof is spent only once the request has passed every check.
    entitled.commit?.();
    return this.record(leaf, entitled.via);
  }

  /** Signs a CSR for any unrevoked identity of the trust domain. */
  async issueForAdmin(request: {
    spiffeId: string;
    csrPem: string;
    ttlSeconds: number;
  }): Promise<SignedChain> {
    const spiffeId = checkWorkloadId(request.spiffeId, this.options.trustDomain);
    this.entitlements.checkNotRevoked(spiffeId);
    const leaf = await this.signer.sign({
      csrPem: request.csrPem,
      expectedId: spiffeId,
      ttlSeconds: this.ttlFor(request.ttlSeconds),
      nowMs: this.now().getTime(),
    });
    return this.record(leaf, 'admin');
  }

  /** The lifetime a leaf asked `requestedSeconds` gets now, within every limit in force. */
  private ttlFor(requestedSeconds: number): number {
    return clampTtl(requestedSeconds, {
      options: this.options,
      meshMaxTtlSeconds: this.mesh.current.policy.maxCertTtlSeconds,
      issuerNotAfter: notAfterOf(this.signer.current),
      now: this.now(),
    });
  }

  /** Records a signed leaf durably, logs it, and returns it with its chain. */
  private async record(leaf: SignedLeaf, via: IssuedVia): Promise<SignedChain> {
    await this.recorder.record({
      serialHex: leaf.serialHex,
      spiffeId: leaf.spiffeId,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      issuedVia: via,
      issuerSerialHex: leaf.issuerSerialHex,
      now: this.now(),
    });
    this.log.info(
      {
        event: 'cert.issued',
        peer_id: leaf.spiffeId,
        serial: leaf.serialHex,
        via,
        not_after: leaf.notAfter.toISOString(),
      },
      'certificate issued',
    );
    return {
      spiffeId: leaf.spiffeId,
      serialHex: leaf.serialHex,
      chainPem: [leaf.pem, leaf.issuerCertPem],
      trustBundlePem: this.publisher.trustBundlePem,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      trustVersion: this.publisher.state.version,
    };
  }
}
