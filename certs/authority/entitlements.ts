import type { SaTokenVerifier } from '../authn/index.js';
import { adminId } from '../spiffe-id.js';
import type { CaStore, IssuedVia } from '../store/index.js';
import { AuthorityError } from './authority-error.js';

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

/** The identity a proof entitles, how it was proved, and how to spend a single-use proof. */
export interface Entitlement {
  spiffeId: string;
  via: IssuedVia;
  /** Spends the proof (a join token); call it only once the request passed every check. */
  commit?: () => void;
}

/**
 * Who may have what: resolves a workload's proof to the identity it
 * entitles, and admits callers by their TLS client certificate (renewal,
 * event reports, admin calls). Reads the store; only `commit` writes.
 */
export class Entitlements {
  private readonly trustDomain: string;
  private readonly store: CaStore;
  private readonly saVerifier: SaTokenVerifier | undefined;
  private readonly now: () => Date;

  constructor(deps: {
    trustDomain: string;
    store: CaStore;
    saVerifier: SaTokenVerifier | undefined;
    now: () => Date;
  }) {
    this.trustDomain = deps.trustDomain;
    this.store = deps.store;
    this.saVerifier = deps.saVerifier;
    this.now = deps.now;
  }

  /**
   * Resolves a proof to the identity it entitles without spending it.
   * Throws AuthorityError SA_TOKENS_DISABLED, the token verifier's code,
   * RENEWAL_NO_CERT, CERT_UNKNOWN or CERT_REVOKED, or the store's TOKEN_*.
   */
  async entitledId(proof: Proof): Promise<Entitlement> {
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
    if (spiffeId !== adminId(this.trustDomain)) {
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

  /** Throws AuthorityError IDENTITY_REVOKED when `spiffeId` may not be issued certificates. */
  checkNotRevoked(spiffeId: string): void {
    if (this.store.isIdentityRevoked(spiffeId)) {
      throw new AuthorityError(
        'IDENTITY_REVOKED',
        `${spiffeId} is revoked; no certificate is issued to it`,
      );
    }
  }
}
