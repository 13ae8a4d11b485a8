import type { CaStore } from '../store/index.js';
import { createCrl, type CrlReason, type Issuer } from '../x509/index.js';

/** How long a CRL is valid after it is made, in ms (one hour). */
const CRL_VALIDITY_MS = 3600_000;

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

/**
 * Signs a CRL, as PEM, of the certificates `issuer` signed that are revoked
 * and unexpired at `now`, valid for one hour. Reads the store; writes
 * nothing.
 */
export function buildRevocationCrl(
  store: CaStore,
  issuer: Issuer,
  crlNumber: number,
  now: Date,
): string {
  const entries = store
    .listRevocations(now)
    .serials.filter((r) => store.getCert(r.serialHex)?.issuerSerialHex === issuer.serialHex)
    .map((r) => ({
      serialHex: r.serialHex,
      revokedAt: r.revokedAt,
      reason: crlReasonOf(r.reason),
    }));
  return createCrl({
    issuer,
    entries,
    crlNumber,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + CRL_VALIDITY_MS),
  });
}
