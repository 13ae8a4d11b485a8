import type { KeyObject } from 'node:crypto';
import { PalisadeError } from './errors.js';
import type { Logger } from './log.js';
import { MeshPolicyState } from './mesh-policy-state.js';
import type { CaMetrics } from './metrics.js';
import { adminId } from './spiffe-id.js';
import type { SaTokenVerifier } from './authn/index.js';
import { IssuanceRecorder } from './issuance-recorder.js';
import { checkWorkloadId, type SignedLeaf, type SigningPool } from './signing/index.js';
import type {
  CaStore,
  CertRecord,
  IssuedVia,
  MeshPolicyVersion,
  RevocationSet,
} from './store/index.js';
import {
  createCrl,
  normaliseSerialHex,
  splitPemChain,
  type CrlReason,
  type Issuer,
} from './x509/index.js';

/** Shortest certificate lifetime the CA hands out by default, whatever is asked. */
export const MIN_TTL_SECONDS = 60;

/** How the CA decides lifetimes. */
export interface AuthorityOptions {
  trustDomain: string;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  /** Shortest lifetime handed out; MIN_TTL_SECONDS unless set (tests of rotation lower it). */
  minTtlSeconds?: number;
}

/** What the CA knows of a caller's verified TLS client certificate. */
export interface PeerIdentity {
  /** Lowercase hex, no leading zero bytes (as the store keeps serials). */
  readonly serialHex: string;
  /** The single URI SAN when it is a SPIFFE ID, else undefined. */
  readonly spiffeId: string | undefined;
}

/** A caller's proof of which identity it may have signed. */
export type Proof =
  | { kind: 'sa-token'; token: string }
  | { kind: 'join-token'; token: string }
  | { kind: 'renewal'; peer: PeerIdentity | undefined };

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

/** What setting the mesh policy did; `changed` is false for the document already in force. */
export interface MeshPolicyChange {
  policy: MeshPolicyVersion;
  changed: boolean;
  trustVersion: number;
}

/** Raised for requests the CA refuses; the code maps to a gRPC status. */
export class AuthorityError extends PalisadeError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AuthorityError';
  }
}

type TrustListener = (state: TrustState) => void;

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
  private readonly saVerifier: SaTokenVerifier | undefined;
  private readonly now: () => Date;
  private readonly listeners = new Set<TrustListener>();
  private readonly signer: SigningPool;
  private readonly recorder: IssuanceRecorder;
  private readonly mesh: MeshPolicyState;
  private trustBundlePem: string[];
  private state: TrustState;

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
    this.recorder = new IssuanceRecorder(deps.store);
    this.trustBundlePem = splitPemChain(deps.bundlePem);
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.saVerifier = deps.saVerifier;
    this.now = deps.now ?? (() => new Date());
    this.mesh = new MeshPolicyState(deps.store.policies, {
      trustDomain: deps.options.trustDomain,
      minTtlSeconds: deps.options.minTtlSeconds ?? MIN_TTL_SECONDS,
    });
    this.state = this.computeState();
    this.metrics.trustVersion.set(this.state.version);
    this.metrics.meshPolicyVersion.set(this.state.meshPolicy.version);
    this.metrics.intermediateExpirySeconds.set(notAfterOf(this.signer.current).getTime() / 1000);
  }

  /** The intermediate currently signing. */
  get intermediate(): Issuer {
    return this.signer.current;
  }

  /** How many trust watchers are subscribed. */
  get watcherCount(): number {
    return this.listeners.size;
  }

  /** The trust state agents should hold now. */
  get trust(): TrustState {
    return this.state;
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
    const entitled = await this.entitledId(request.proof);
    this.checkNotRevoked(entitled.spiffeId);
    const ttlSeconds = this.clampTtl(request.ttlSeconds);
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

  /** Signs a CSR for any identity of the trust domain: the admin path. */
  async issueForAdmin(request: {
    spiffeId: string;
    csrPem: string;
    ttlSeconds: number;
  }): Promise<SignedChain> {
    const spiffeId = checkWorkloadId(request.spiffeId, this.options.trustDomain);
    this.checkNotRevoked(spiffeId);
    const leaf = await this.signer.sign({
      csrPem: request.csrPem,
      expectedId: spiffeId,
      ttlSeconds: this.clampTtl(request.ttlSeconds),
      nowMs: this.now().getTime(),
    });
    return this.record(leaf, 'admin');
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
      this.publish();
    }
    return { ...result, trustVersion: this.state.version };
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
    this.publish();
    return { ...result, trustVersion: this.state.version };
  }

  /** Lifts an identity revocation so the identity may be issued certificates again. */
  unrevokeIdentity(spiffeId: string) {
    const id = checkWorkloadId(spiffeId, this.options.trustDomain);
    const wasRevoked = this.store.unrevokeIdentity(id, this.now());
    if (wasRevoked) {
      this.log.info({ event: 'identity.unrevoked', peer_id: id }, 'identity revocation lifted');
      this.publish();
    }
    return { wasRevoked, trustVersion: this.state.version };
  }

  /** Creates a one-time join token for an identity; returned once, stored hashed. */
  createJoinToken(spiffeId: string, ttlSeconds: number) {
    const id = checkWorkloadId(spiffeId, this.options.trustDomain);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 7 * 86400) {
      throw new AuthorityError(
        'TTL_INVALID',
        `join token lifetime must be 1s..7d, got ${ttlSeconds}s`,
      );
    }
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
    const entries = this.store
      .listRevocations(now)
      .serials.filter(
        (r) => this.store.getCert(r.serialHex)?.issuerSerialHex === this.signer.current.serialHex,
      )
      .map((r) => ({
        serialHex: r.serialHex,
        revokedAt: r.revokedAt,
        reason: crlReasonOf(r.reason),
      }));
    const crlNumber = this.state.version;
    const pem = createCrl({
      issuer: this.signer.current,
      entries,
      crlNumber,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + 3600_000),
    });
    return { pem, crlNumber };
  }

  /**
   * Replaces the mesh policy with an operator's document (YAML or JSON),
   * stored with its audit record and a trust-version bump, then published to
   * every watcher. A document equal to the one in force changes nothing.
   * Throws PolicyError POLICY_INVALID naming every problem (a `maxCertTtl`
   * below the CA's shortest lifetime among them); the policy in force stays.
   */
  setMeshPolicy(text: string, source: string, setBy: string): MeshPolicyChange {
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
    this.publish();
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
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drops revoked serials whose certificates expired, publishing a new version if any left. */
  sweepExpired(): void {
    const next = this.store.revocationSet(this.now());
    if (sameMembers(next.serials, this.state.revokedSerials)) return;
    const version = this.store.bumpTrustVersion('revocations.expired');
    this.publish({ ...next, version });
  }

  /**
   * Admits an admin call: the caller must have presented an unrevoked
   * certificate of this CA for the admin identity. Throws ADMIN_NO_CERT,
   * ADMIN_REQUIRED or CERT_REVOKED; returns the admin certificate's serial.
   */
  checkAdmin(peer: PeerIdentity | undefined): string {
    if (!peer) {
      throw new AuthorityError(
        'ADMIN_NO_CERT',
        'admin calls need the admin certificate (mutual TLS)',
      );
    }
    const { spiffeId, serialHex: serial } = peer;
    if (spiffeId !== adminId(this.options.trustDomain)) {
      throw new AuthorityError(
        'ADMIN_REQUIRED',
        `${spiffeId ?? 'a certificate without SPIFFE ID'} is not the admin identity`,
      );
    }
    if (this.store.isSerialRevoked(serial) || this.store.isIdentityRevoked(spiffeId)) {
      throw new AuthorityError('CERT_REVOKED', `admin certificate ${serial} is revoked`);
    }
    return serial;
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

  private publish(set?: RevocationSet): void {
    this.state = this.computeState(set);
    this.metrics.trustVersion.set(this.state.version);
    this.log.info(
      {
        event: 'trust.updated',
        version: this.state.version,
        revoked_serials: this.state.revokedSerials.length,
        revoked_ids: this.state.revokedIds.length,
        mesh_policy_version: this.state.meshPolicy.version,
        watchers: this.listeners.size,
      },
      'trust state published',
    );
    for (const listener of this.listeners) listener(this.state);
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
      trustBundlePem: this.trustBundlePem,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      trustVersion: this.state.version,
    };
  }

  private checkNotRevoked(spiffeId: string): void {
    if (this.store.isIdentityRevoked(spiffeId)) {
      throw new AuthorityError(
        'IDENTITY_REVOKED',
        `${spiffeId} is revoked; no certificate is issued to it`,
      );
    }
  }

  private clampTtl(requested: number): number {
    if (!Number.isFinite(requested) || requested < 0) {
      throw new AuthorityError(
        'TTL_INVALID',
        `requested lifetime must be >= 0 seconds, got ${requested}`,
      );
    }
    const minSeconds = this.options.minTtlSeconds ?? MIN_TTL_SECONDS;
    const asked = requested === 0 ? this.options.defaultTtlSeconds : requested;
    // The mesh policy may only shorten the CA's own limit; it is never below
    // the shortest lifetime (setMeshPolicy refuses that).
    const maxSeconds = Math.min(
      this.options.maxTtlSeconds,
      this.mesh.current.policy.maxCertTtlSeconds ?? Number.POSITIVE_INFINITY,
    );
    const clamped = Math.min(Math.max(asked, minSeconds), maxSeconds);
    // A leaf must not outlive the intermediate that signs it.
    const untilIssuerExpiry = Math.floor(
      (notAfterOf(this.signer.current).getTime() - this.now().getTime()) / 1000,
    );
    return Math.max(minSeconds, Math.min(clamped, untilIssuerExpiry));
  }

  /** Resolves a proof to the identity it entitles; `commit` spends a single-use proof. */
  private async entitledId(
    proof: Proof,
  ): Promise<{ spiffeId: string; via: IssuedVia; commit?: () => void }> {
    switch (proof.kind) {
      case 'sa-token': {
        if (!this.saVerifier) {
          throw new AuthorityError(
            'SA_TOKENS_DISABLED',
            'this CA verifies no service-account tokens (start it with --sa-jwks kubernetes, ' +
              'or --sa-jwks FILE|URL with --sa-issuer)',
          );
        }
        const result = await this.saVerifier.verify(proof.token);
        if (!result.ok) throw new AuthorityError(result.code, result.reason);
        return { spiffeId: result.spiffeId, via: 'sa-token' };
      }
      case 'join-token': {
        const now = this.now();
        const spiffeId = this.store.peekJoinToken(proof.token, now);
        return {
          spiffeId,
          via: 'join-token',
          commit: () => {
            this.store.consumeJoinToken(proof.token, now);
          },
        };
      }
      case 'renewal': {
        const noCert = 'renewal needs the current certificate presented in the TLS handshake';
        const spiffeId = this.certifiedPeerId(proof.peer, 'RENEWAL_NO_CERT', noCert);
        return { spiffeId, via: 'renewal' };
      }
    }
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
    if (!peer) throw new AuthorityError(noCertCode, noCertMessage);
    const { serialHex: serial, spiffeId } = peer;
    const record = this.store.getCert(serial);
    if (!spiffeId || !record || record.spiffeId !== spiffeId) {
      throw new AuthorityError('CERT_UNKNOWN', `certificate ${serial} was not issued by this CA`);
    }
    if (this.store.isSerialRevoked(serial)) {
      throw new AuthorityError('CERT_REVOKED', `certificate ${serial} of ${spiffeId} is revoked`);
    }
    return spiffeId;
  }
}

const CRL_REASON_WORDS: Record<string, CrlReason> = {
  'key-compromise': 'keyCompromise',
  keycompromise: 'keyCompromise',
  'ca-compromise': 'cACompromise',
  'affiliation-changed': 'affiliationChanged',
  superseded: 'superseded',
  'cessation-of-operation': 'cessationOfOperation',
  decommissioned: 'cessationOfOperation',
  'certificate-hold': 'certificateHold',
  'privilege-withdrawn': 'privilegeWithdrawn',
};

/** Maps an operator's free-text reason to an RFC 5280 reason code when it names one. */
export function crlReasonOf(reason: string): CrlReason {
  return CRL_REASON_WORDS[reason.trim().toLowerCase()] ?? 'unspecified';
}

/** Lowercase hex without separators or leading zero bytes; REQUEST_INVALID when not hex. */
export function normaliseSerial(serial: string): string {
  try {
    return normaliseSerialHex(serial.replace(/:/g, ''));
  } catch (err) {
    const message = `not a hex serial number: ${JSON.stringify(serial)}`;
    throw new AuthorityError('REQUEST_INVALID', message, { cause: err });
  }
}

/** The issuer certificate's notAfter as a Date (Node 20 has no `validToDate`). */
export function notAfterOf(issuer: Issuer): Date {
  return new Date(issuer.cert.validTo);
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}
