import type { KeyObject } from 'node:crypto';

import { parseCertificateDer, publicKeyOf, type CertFacts } from './cert-facts.js';
import { X509Error } from './errors.js';
import { fromPem, splitPemChain } from './pem.js';

/** A parsed certificate with its key, remembered across handshakes. */
export interface KnownCert {
  readonly facts: CertFacts;
  readonly publicKey: KeyObject;
  /** DER cache keys of the certificates whose signature over this one was checked. */
  readonly signedBy: Set<string>;
}

/** How many presented intermediates are remembered before the oldest is dropped. */
export const ISSUER_CACHE_SIZE = 128;

/**
 * The trusted roots of one trust bundle, parsed once, plus a small cache of
 * intermediates seen in presented chains, so that a handshake re-parses and
 * re-verifies only the leaf. Throws X509Error CERT_MALFORMED when a root
 * cannot be parsed or is not a CA.
 */
export class TrustStore {
  /** The roots as normalised PEM blocks, one per certificate. */
  readonly rootPems: readonly string[];

  readonly #rootsBySubject = new Map<string, KnownCert[]>();
  readonly #issuers = new Map<string, KnownCert>();

  constructor(rootPems: string[]) {
    const blocks = rootPems.flatMap((pem) => {
      const found = splitPemChain(pem);
      if (found.length === 0)
        throw new X509Error('CERT_MALFORMED', 'trust bundle entry has no certificate');
      return found;
    });
    for (const block of blocks) {
      const root = known(parseCertificateDer(fromPem(block, ['CERTIFICATE'], 'CERT_MALFORMED')));
      if (!root.facts.isCa)
        throw new X509Error('CERT_MALFORMED', 'trust bundle holds a non-CA certificate');
      const key = cacheKey(root.facts.subjectDer);
      this.#rootsBySubject.set(key, [...(this.#rootsBySubject.get(key) ?? []), root]);
    }
    this.rootPems = Object.freeze(blocks);
  }

  /** The roots whose subject is exactly `issuerDer` (several during a root rotation). */
  rootsNamed(issuerDer: Buffer): readonly KnownCert[] {
    return this.#rootsBySubject.get(cacheKey(issuerDer)) ?? [];
  }

  /** Parses a presented intermediate, or returns it from the cache; throws CERT_MALFORMED. */
  intermediate(der: Buffer): KnownCert {
    const key = cacheKey(der);
    const cached = this.#issuers.get(key);
    if (cached !== undefined) return cached;

    const parsed = known(parseCertificateDer(Buffer.from(der)));
    if (this.#issuers.size >= ISSUER_CACHE_SIZE) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      this.#issuers.delete(this.#issuers.keys().next().value as string);
    }
    this.#issuers.set(key, parsed);
    return parsed;
  }
}

/** The key under which certificates are cached and compared: the DER bytes themselves. */
export function cacheKey(der: Buffer): string {
  return der.toString('latin1');
}

function known(facts: CertFacts): KnownCert {
  return { facts, publicKey: publicKeyOf(facts), signedBy: new Set() };
}
