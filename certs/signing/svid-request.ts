import { PalisadeError } from '../errors.js';
import { parseSpiffeId } from '../spiffe-id.js';
import { createLeafCertificate, parseCsr, type Issuer, type ParsedCsr } from '../x509/index.js';

/** A leaf certificate signed for a checked CSR. */
export interface SignedLeaf {
  spiffeId: string;
  serialHex: string;
  pem: string;
  notBefore: Date;
  notAfter: Date;
  /** The intermediate that signed it, which the chain must carry. */
  issuerSerialHex: string;
  issuerCertPem: string;
}

/** One signing request, as the authority hands it to a signer. */
export interface SvidRequest {
  csrPem: string;
  /** The identity the caller is entitled to; the CSR must ask for exactly this one. */
  expectedId: string;
  ttlSeconds: number;
  nowMs: number;
}

/**
 * Checks that `spiffeId` names a workload of `trustDomain` (not the trust
 * domain itself). Throws SPIFFE_ID_INVALID or TRUST_DOMAIN_MISMATCH.
 */
export function checkWorkloadId(spiffeId: string, trustDomain: string): string {
  const id = parseSpiffeId(spiffeId);
  if (id.trustDomain !== trustDomain) {
    throw new PalisadeError(
      'TRUST_DOMAIN_MISMATCH',
      `${spiffeId} is outside trust domain ${trustDomain}`,
    );
  }
  if (id.path === '') {
    throw new PalisadeError(
      'SPIFFE_ID_INVALID',
      `${spiffeId} names a trust domain, not a workload`,
    );
  }
  return id.uri;
}

/**
 * The X.509-SVID rule for requests: exactly one URI SAN, a SPIFFE ID of the
 * trust domain, and no DNS, IP, e-mail or other SAN. Returns that ID; throws
 * CSR_SAN_INVALID otherwise.
 */
export function requestedIdOf(csr: ParsedCsr, trustDomain: string): string {
  const extras =
    csr.dnsNames.length + csr.ipAddresses.length + csr.emails.length + csr.otherSanCount;
  if (csr.uris.length !== 1 || extras > 0) {
    throw new PalisadeError(
      'CSR_SAN_INVALID',
      'CSR must carry exactly one URI SAN and no other SAN; ' +
        `it has ${csr.uris.length} URI and ${extras} other`,
    );
  }
  return checkWorkloadId(csr.uris[0] as string, trustDomain);
}

/**
 * Parses and checks a CSR (signature, SAN shape, the expected identity) and
 * signs a leaf for it. Pure apart from the signature's randomness, so it runs
 * the same inline or in a worker thread. Throws PalisadeError with the code
 * of the first problem (CSR_*, CSR_SAN_MISMATCH, ...).
 */
export function signSvidRequest(
  request: SvidRequest,
  issuer: Issuer,
  trustDomain: string,
): SignedLeaf {
  const csr = parseCsr(request.csrPem);
  const requested = requestedIdOf(csr, trustDomain);
  if (requested !== request.expectedId) {
    throw new PalisadeError(
      'CSR_SAN_MISMATCH',
      `CSR asks for ${requested} but the caller is entitled to ${request.expectedId}`,
    );
  }
  const leaf = createLeafCertificate({
    publicKey: csr.publicKey,
    spiffeId: requested,
    issuer,
    ttlSeconds: request.ttlSeconds,
    now: new Date(request.nowMs),
  });
  return {
    spiffeId: requested,
    serialHex: leaf.serialHex,
    pem: leaf.pem,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    issuerSerialHex: issuer.serialHex,
    issuerCertPem: issuer.certPem,
  };
}
