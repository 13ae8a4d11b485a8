import { isSpiffeId } from '../spiffe-id.js';
import { KEY_USAGE_BIT } from './asn1.js';
import { isSignedBy, parseCertificateDer, type CertFacts } from './cert-facts.js';
import { fromPem, splitPemChain } from './pem.js';
import { cacheKey, type KnownCert, type TrustStore } from './trust-store.js';

/** Why a presented SVID chain was refused. */
export type SvidRejection =
  | 'malformed'
  | 'expired'
  | 'not-yet-valid'
  | 'unknown-issuer'
  | 'bad-signature'
  | 'not-svid'
  | 'revoked';

/** The outcome of checking a presented chain; `detail` is for logs, not for matching. */
export type SvidVerdict =
  | {
      ok: true;
      spiffeId: string;
      serialHex: string;
      notBefore: Date;
      notAfter: Date;
      /** Serials from the leaf up to and including the trusted root. */
      chainSerials: string[];
    }
  | { ok: false; reason: SvidRejection; detail: string; spiffeId?: string; serialHex?: string };

/** Longest chain accepted between leaf and root, in intermediates. */
export const MAX_INTERMEDIATES = 4;

const CERT_SIGN_MASK = (1 << KEY_USAGE_BIT.keyCertSign) | (1 << KEY_USAGE_BIT.cRLSign);

/**
 * Checks a presented X.509-SVID chain (leaf first, DER or PEM) against the
 * trust bundle: each signature up to a trusted root, CA flags and pathLen of
 * issuers, validity at `now` for every certificate, the SVID shape of the leaf
 * (one SPIFFE URI SAN, not a CA), then `isRevoked` for every certificate
 * (issuers are asked with an empty SPIFFE ID). Never throws on bad input.
 */
export function verifySvid(opts: {
  chain: (Buffer | string)[];
  trust: TrustStore;
  now?: Date;
  isRevoked?: (serialHex: string, spiffeId: string) => boolean;
}): SvidVerdict {
  let leaf: CertFacts;
  let presented: KnownCert[];
  try {
    const ders = opts.chain.flatMap(toDers);
    if (ders.length === 0) return reject('malformed', 'no certificate presented');
    leaf = parseCertificateDer(ders[0] as Buffer);
    presented = ders.slice(1).map((der) => opts.trust.intermediate(der));
  } catch {
    // Undecodable input is a verdict, not a failure of the verifier.
    return reject('malformed', 'certificate chain cannot be decoded');
  }
  const spiffeId = svidIdOf(leaf);
  const about = { serialHex: leaf.serialHex, ...(spiffeId === undefined ? {} : { spiffeId }) };

  const path = buildPath(leaf, presented, opts.trust);
  if (!Array.isArray(path)) return { ...path, ...about };
  const problem = checkPath(leaf, path, opts.now ?? new Date());
  if (problem !== undefined) return { ...problem, ...about };
  if (spiffeId === undefined) {
    return { ...reject('not-svid', 'leaf must carry exactly one SPIFFE ID URI SAN'), ...about };
  }

  const isRevoked = opts.isRevoked;
  if (isRevoked !== undefined) {
    if (isRevoked(leaf.serialHex, spiffeId)) {
      return { ...reject('revoked', 'leaf serial or identity is revoked'), ...about };
    }
    const revokedIssuer = path.find((issuer) => isRevoked(issuer.facts.serialHex, ''));
    if (revokedIssuer !== undefined) {
      return {
        ...reject('revoked', `issuer ${revokedIssuer.facts.serialHex} is revoked`),
        ...about,
      };
    }
  }

  return {
    ok: true,
    spiffeId,
    serialHex: leaf.serialHex,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    chainSerials: [leaf.serialHex, ...path.map((issuer) => issuer.facts.serialHex)],
  };
}

type Rejection = Extract<SvidVerdict, { ok: false }>;

/** Walks leaf -> presented intermediates -> a trusted root; returns the issuers in order. */
function buildPath(
  leaf: CertFacts,
  presented: KnownCert[],
  trust: TrustStore,
): KnownCert[] | Rejection {
  const path: KnownCert[] = [];
  let current = leaf;
  for (let depth = 0; depth <= MAX_INTERMEDIATES; depth++) {
    // Same-named CAs are common (every deployment names its root after its
    // trust domain), so key identifiers pick the candidates before signatures.
    const child = current;
    const roots = trust.rootsNamed(child.issuerDer).filter((root) => isKeyMatch(child, root));
    if (roots.length > 0) {
      // During a root rotation two roots share one name: any that signed it will do.
      const root = roots.find((candidate) => isVerifiedIssuer(child, candidate, depth > 0));
      if (root === undefined) {
        return reject('bad-signature', 'signature by the trusted root does not verify');
      }
      path.push(root);
      return path;
    }

    const next = presented[depth];
    if (
      next === undefined ||
      !next.facts.subjectDer.equals(child.issuerDer) ||
      !isKeyMatch(child, next)
    ) {
      return reject('unknown-issuer', 'chain does not lead to a trusted root');
    }
    if (!isVerifiedIssuer(child, next, depth > 0)) {
      return reject('bad-signature', 'signature by the presented issuer does not verify');
    }
    path.push(next);
    current = next.facts;
  }
  return reject('unknown-issuer', `chain is longer than ${MAX_INTERMEDIATES} intermediates`);
}

/** Whether the child's authorityKeyIdentifier, when both ids exist, names this issuer. */
function isKeyMatch(child: CertFacts, issuer: KnownCert): boolean {
  const wanted = child.authorityKeyId;
  const offered = issuer.facts.subjectKeyId;
  return wanted === undefined || offered === undefined || wanted.equals(offered);
}

function isVerifiedIssuer(child: CertFacts, issuer: KnownCert, isCached: boolean): boolean {
  // Only signatures over cached intermediates are remembered; leaves change
  // per peer and would grow the memo without bound, so they are always checked.
  if (!isCached) return isSignedBy(child, issuer.publicKey);
  const childKey = cacheKey(child.der);
  if (issuer.signedBy.has(childKey)) return true;
  if (!isSignedBy(child, issuer.publicKey)) return false;
  issuer.signedBy.add(childKey);
  return true;
}

/** Issuer constraints (RFC 5280 6.1.4), validity of all, then the leaf's SVID shape. */
function checkPath(leaf: CertFacts, path: KnownCert[], now: Date): Rejection | undefined {
  for (const [index, { facts }] of path.entries()) {
    if (!facts.isCa) return reject('unknown-issuer', `issuer ${facts.serialHex} is not a CA`);
    if (
      facts.keyUsageMask !== undefined &&
      !(facts.keyUsageMask & (1 << KEY_USAGE_BIT.keyCertSign))
    ) {
      return reject('unknown-issuer', `issuer ${facts.serialHex} may not sign certificates`);
    }
    // `index` intermediates sit between this issuer and the leaf.
    if (facts.pathLen !== undefined && index > facts.pathLen) {
      return reject('unknown-issuer', `issuer ${facts.serialHex} path length exceeded`);
    }
  }
  for (const facts of [leaf, ...path.map((issuer) => issuer.facts)]) {
    if (now < facts.notBefore)
      return reject('not-yet-valid', `${facts.serialHex} is not valid yet`);
    if (now > facts.notAfter) return reject('expired', `${facts.serialHex} has expired`);
    if (facts.unknownCriticalOids.length > 0) {
      return reject('malformed', `${facts.serialHex} has an unknown critical extension`);
    }
  }
  if (leaf.isCa || leaf.keyUsageMask === undefined || leaf.keyUsageMask & CERT_SIGN_MASK) {
    return reject('not-svid', 'leaf is a CA or lacks leaf key usage');
  }
  if (!(leaf.keyUsageMask & (1 << KEY_USAGE_BIT.digitalSignature))) {
    return reject('not-svid', 'leaf lacks digitalSignature key usage');
  }
  return undefined;
}

/** The SPIFFE ID of a certificate under the X.509-SVID single-URI-SAN rule, if any. */
export function svidIdOf(facts: CertFacts): string | undefined {
  const uris = facts.altNames?.uris ?? [];
  return uris.length === 1 && isSpiffeId(uris[0] as string) ? uris[0] : undefined;
}

function toDers(item: Buffer | string): Buffer[] {
  if (Buffer.isBuffer(item)) return [item];
  if (typeof item !== 'string') throw new TypeError('chain entries must be Buffers or strings');
  const blocks = splitPemChain(item);
  if (blocks.length === 0) throw new TypeError('chain entry holds no PEM certificate');
  return blocks.map((block) => fromPem(block, ['CERTIFICATE'], 'CERT_MALFORMED'));
}

function reject(reason: SvidRejection, detail: string): Rejection {
  return { ok: false, reason, detail };
}
