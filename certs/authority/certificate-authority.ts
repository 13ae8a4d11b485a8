import type { KeyObject } from 'node:crypto';

import type { SaTokenVerifier } from '../authn/index.js';
import type { Logger } from '../log.js';
import { MeshPolicyState } from '../mesh-policy-state.js';
import type { CaMetrics } from '../metrics.js';
import { checkWorkloadId, type SigningPool } from '../signing/index.js';
import type {
  CaStore,
  CertRecord,
  MeshPolicySetResult,
  MeshPolicyVersion,
} from '../store/index.js';
import { splitPemChain, type Issuer } from '../x509/index.js';
import { Entitlements, type PeerIdentity, type Proof } from './entitlements.js';
import { Issuance, type SignedChain } from './issuance.js';
import { MIN_TTL_SECONDS, notAfterOf, type AuthorityOptions } from './lifetime.js';
import { checkJoinTokenTtl, normaliseSerial } from './request-input.js';
import { buildRevocationCrl } from './revocation-crl.js';
import { TrustPublisher, type TrustListener, type TrustState } from './trust-publisher.js';

/**
 * The certificate authority's decisions: who may have which certificate for
 * how long, revocation, join tokens, CRLs and the trust state every agent
 * watches. It owns no sockets; the gRPC services call it, and it writes
 * through the store so that every change is durable before it answers.
 */
export class CertificateAuthority {
  readonly options: AuthorityOptions;
  private readonly store: CaStore;
  private readonly log: Logger;
  private readonly metrics: CaMetrics;
  private readonly now: () => Date;
  private readonly signer: SigningPool;
  private readonly mesh: MeshPolicyState;
  private readonly entitlements: Entitlements;
  private readonly publisher: TrustPublisher;
  private readonly issuance: Issuance;

  constructor(deps: {
    options: AuthorityOptions;
    store: CaStore;
    signer: SigningPool;
    bundlePem: string;
    log: Logger;
    metrics: CaMetrics;
    saVerifier?: SaTokenVerifier;
    now?: () => Date;
  }) {
    this.options = deps.options;
    this.store = deps.store;
    this.signer = deps.signer;
    const trustBundlePem = splitPemChain(deps.bundlePem);
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.now = deps.now ?? (() => new Date());
    this.mesh = new MeshPolicyState(deps.store.policies, {
      trustDomain: deps.options.trustDomain,
      minTtlSeconds: deps.options.minTtlSeconds ?? MIN_TTL_SECONDS,
    });
    this.entitlements = new Entitlements({
      trustDomain: deps.options.trustDomain,
      store: deps.store,
      saVerifier: deps.saVerifier,
      now: this.now,
    });
    this.publisher = new TrustPublisher({
      trustBundlePem,
      store: deps.store,
      mesh: this.mesh,
      log: deps.log,
      metrics: deps.metrics,
      now: this.now,
    });
    this.issuance = new Issuance({
      options: deps.options,
      store: deps.store,
      signer: deps.signer,
      entitlements: this.entitlements,
      mesh: this.mesh,
      publisher: this.publisher,
      log: deps.log,
      now: this.now,
    });
    this.metrics.meshPolicyVersion.set(this.publisher.state.meshPolicy.version);
    this.metrics.intermediateExpirySeconds.set(notAfterOf(this.signer.current).getTime() / 1000);
  }

  /** The intermediate currently signing. */
  get intermediate(): Issuer {
    return this.signer.current;
  }

  /** How many trust watchers are subscribed. */
  get watcherCount(): number {
    return this.publisher.watcherCount;
  }

  /** The trust state agents should hold now. */
  get trust(): TrustState {
    return this.publisher.state;
  }

  /**
   * Signs a workload's CSR after checking the CSR and the proof: the CSR's one
   * URI SAN must be the identity the proof entitles, which must not be revoked.
   * Throws AuthorityError (or the x509/store/authn error) naming the problem;
   * nothing is written unless a certificate is issued.
   */
  async signForWorkload(request: {
    csrPem: string;
    ttlSeconds: number;
    proof: Proof;
  }): Promise<SignedChain> {
    return this.issuance.signForWorkload(request);
  }

  /** Signs a CSR for any identity of the trust domain: the admin path. */
  async issueForAdmin(request: {
    spiffeId: string;
    csrPem: string;
    ttlSeconds: number;
  }): Promise<SignedChain> {
    return this.issuance.issueForAdmin(request);
  }

  /** Revokes one certificate; durable and published to every watcher before it returns. */
  revokeSerial(serialHex: string, reason: string) {
    const serial = normaliseSerial(serialHex);
    const result = this.store.revokeSerial(serial, reason, this.now());
    if (!result.alreadyRevoked) {
      this.metrics.revocations.inc({ kind: 'serial' });
      this.log.info(
        { event: 'cert.revoked', serial, peer_id: result.revocation.spiffeId, reason },
        'certificate revoked',
      );
      this.publisher.publish();
    }
    return { ...result, trustVersion: this.publisher.state.version };
  }

  /** Revokes every certificate of an identity and refuses it new ones until lifted. */
  revokeIdentity(spiffeId: string, reason: string) {
    const id = checkWorkloadId(spiffeId, this.options.trustDomain);
    const result = this.store.revokeIdentity(id, reason, this.now());
    this.metrics.revocations.inc({ kind: 'identity' });
    this.log.info(
      { event: 'identity.revoked', peer_id: id, reason, serials: result.serials.length },
      'identity revoked',
    );
    this.publisher.publish();
    return { ...result, trustVersion: this.publisher.state.version };
  }

  /** Lifts an identity revocation so the identity may be issued certificates again. */
  unrevokeIdentity(spiffeId: string) {
    const id = checkWorkloadId(spiffeId, this.options.trustDomain);
    const wasRevoked = this.store.unrevokeIdentity(id, this.now());
    if (wasRevoked) {
      this.log.info({ event: 'identity.unrevoked', peer_id: id }, 'identity revocation lifted');
      this.publisher.publish();
    }
    return { wasRevoked, trustVersion: this.publisher.state.version };
  }

  /** Creates a one-time join token for an identity; returned once, stored hashed. */
  createJoinToken(spiffeId: string, ttlSeconds: number) {
    const id = checkWorkloadId(spiffeId, this.options.trustDomain);
    checkJoinTokenTtl(ttlSeconds);
    const created = this.store.createJoinToken(id, ttlSeconds, this.now());
    this.metrics.joinTokensCreated.inc();
    this.log.info(
      {
        event: 'token.created',
        peer_id: id,
        id_hint: created.record.idHint,
        expires_at: created.record.expiresAt.toISOString(),
      },
      'join token created',
    );
    return created;
  }

  /** Switches signing to a new intermediate (already persisted by the caller). */
  useIntermediate(certPem: string, key: KeyObject): void {
    const previous = this.signer.current;
    const next = this.signer.useIssuer(certPem, key);
    this.store.appendAudit('intermediate.rotated', {
      old_serial: previous.serialHex,
      new_serial: next.serialHex,
      not_after: notAfterOf(next).toISOString(),
    });
    this.metrics.intermediateExpirySeconds.set(notAfterOf(next).getTime() / 1000);
    this.log.info(
      { event: 'intermediate.rotated', old_serial: previous.serialHex, serial: next.serialHex },
      'intermediate rotated',
    );
  }

  /** A CRL of the intermediate's unexpired revoked certificates, numbered by trust version. */
  crl(): { pem: string; crlNumber: number } {
    const now = this.now();
    const crlNumber = this.publisher.state.version;
    const pem = buildRevocationCrl(this.store, this.signer.current, crlNumber, now);
    return { pem, crlNumber };
  }

  /**
   * Replaces the mesh policy with an operator's document (YAML or JSON),
   * stored with its audit record and a trust-version bump, then published to
   * every watcher. A document equal to the one in force changes nothing.
   * Throws PolicyError POLICY_INVALID naming every problem (a `maxCertTtl`
   * below the CA's shortest lifetime among them); the policy in force stays.
   */
  setMeshPolicy(text: string, source: string, setBy: string): MeshPolicySetResult {
    const result = this.mesh.set(text, source, setBy, this.now());
    if (!result.changed) return result;
    const { policy } = result;
    this.metrics.meshPolicyVersion.set(policy.version);
    this.log.info(
      {
        event: 'policy.set',
        version: policy.version,
        document_sha256: policy.documentSha256,
        set_by: setBy,
        source,
        trust_version: result.trustVersion,
      },
      'mesh policy set',
    );
    this.publisher.publish();
    return result;
  }

  /** The mesh policy in force (version 0, the open policy, until one is set). */
  meshPolicy(): MeshPolicyVersion {
    return this.mesh.current.record;
  }

  /** Stored mesh policy versions, newest first, at most `limit`. */
  policyHistory(limit?: number): MeshPolicyVersion[] {
    return this.mesh.history(limit);
  }

  /** Registers a listener for every new trust state; returns the unsubscribe function. */
  subscribe(listener: TrustListener): () => void {
    return this.publisher.subscribe(listener);
  }

  /** Drops revoked serials whose certificates expired, publishing a new version if any left. */
  sweepExpired(): void {
    this.publisher.sweepExpired();
  }

  /**
   * Admits an admin call: the caller must have presented an unrevoked
   * certificate of this CA for the admin identity. Throws ADMIN_NO_CERT,
   * ADMIN_REQUIRED or CERT_REVOKED; returns the admin certificate's serial.
   */
  checkAdmin(peer: PeerIdentity | undefined): string {
    return this.entitlements.checkAdmin(peer);
  }

  /**
   * The caller's SPIFFE ID when its TLS client certificate is one this CA
   * issued and has not revoked (the check renewal and event reports share).
   * Throws AuthorityError `noCertCode` without a certificate, CERT_UNKNOWN or
   * CERT_REVOKED otherwise.
   */
  certifiedPeerId(
    peer: PeerIdentity | undefined,
    noCertCode: string,
    noCertMessage: string,
  ): string {
    return this.entitlements.certifiedPeerId(peer, noCertCode, noCertMessage);
  }

  /** Lists certificates and revocations for the admin API. */
  list(options: {
    revokedOnly: boolean;
    includeExpired: boolean;
    spiffeId?: string;
    limit?: number;
  }) {
    const now = this.now();
    const certificates: CertRecord[] = this.store.listCerts({ ...options, now });
    return { certificates, revocations: this.store.listRevocations(now) };
  }
}
