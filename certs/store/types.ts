/** How the caller proved its right to the certificate it was issued. */
export type IssuedVia = 'sa-token' | 'join-token' | 'renewal' | 'admin' | 'bootstrap';

/** Every way of issuing the store accepts, for validation and schema checks. */
export const ISSUED_VIA: readonly IssuedVia[] = [
  'sa-token',
  'join-token',
  'renewal',
  'admin',
  'bootstrap',
];

/** What the CA records about a certificate it has just signed. */
export interface IssuedRecordInput {
  serialHex: string;
  spiffeId: string;
  notBefore: Date;
  notAfter: Date;
  issuedVia: IssuedVia;
  issuerSerialHex: string;
  now?: Date;
}

/** One issued certificate as the store remembers it (never its body or key). */
export interface CertRecord {
  serialHex: string;
  spiffeId: string;
  notBefore: Date;
  notAfter: Date;
  issuedAt: Date;
  issuedVia: IssuedVia;
  issuerSerialHex: string;
  /** Whether the serial has a revocation row (an identity revocation writes one too). */
  revoked: boolean;
}

/** The revocation of one certificate; `notAfter` is the certificate's, kept for expiry. */
export interface SerialRevocation {
  serialHex: string;
  spiffeId: string;
  reason: string;
  revokedAt: Date;
  notAfter: Date;
}

/** The revocation of a whole identity: its certificates and any new issuance. */
export interface IdentityRevocation {
  spiffeId: string;
  reason: string;
  revokedAt: Date;
}

/** What agents must refuse, stamped with the trust version it belongs to. */
export interface RevocationSet {
  version: number;
  serials: string[];
  identities: string[];
}

/** A join token as stored: no token, only a short hint of its hash. */
export interface JoinTokenRecord {
  /** The first 8 hex characters of the token's SHA-256, for operators to tell tokens apart. */
  idHint: string;
  spiffeId: string;
  expiresAt: Date;
  createdAt: Date;
}

/** The outcome of re-checking the audit chain from genesis to head. */
export type AuditVerdict =
  | { ok: true; count: number; headHash: string }
  | { ok: false; count: number; brokenSeq: number; reason: string };

/** One link of the append-only audit chain. */
export interface AuditRecord {
  seq: number;
  ts: Date;
  event: string;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}
