import { X509Certificate, type KeyObject } from 'node:crypto';

import { authorityKeyIdDer, keyIdOf, KEY_USAGE_BIT, type Signer } from './asn1.js';
import { parseCertificateDer } from './cert-facts.js';
import { X509Error } from './errors.js';
import { signerOf } from './keys.js';
import { toPem } from './pem.js';

/** An issuer prepared once for fast repeated signing. */
export interface Issuer {
  /** The issuer certificate alone, as one normalised PEM block. */
  readonly certPem: string;
  readonly cert: X509Certificate;
  readonly serialHex: string;
}

/** What signing needs about an issuer, computed once by `loadIssuer`. */
export interface IssuerInternals {
  readonly signer: Signer;
  /** The issuer's subject Name, byte for byte, to become the issuer of what it signs. */
  readonly nameDer: Buffer;
  /** The authorityKeyIdentifier extension for everything it signs. */
  readonly authorityKeyIdExtensionDer: Buffer;
  readonly notAfter: Date;
}

// Kept out of the Issuer object so that logging or cloning an issuer shows
// nothing about its key and no caller can swap the key under a certificate.
const internals = new WeakMap<Issuer, IssuerInternals>();

/**
 * Prepares an issuer: parses its certificate once and pre-computes its Name
 * DER, key identifier and signature algorithm. Throws X509Error ISSUER_INVALID
 * when the certificate is unreadable, is not a CA allowed to sign certificates,
 * or does not match `privateKey`.
 */
export function loadIssuer(certPem: string, privateKey: KeyObject): Issuer {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new X509Error('ISSUER_INVALID', 'issuer certificate cannot be parsed', { cause: err });
  }
  let facts;
  try {
    facts = parseCertificateDer(cert.raw);
  } catch (err) {
    throw new X509Error('ISSUER_INVALID', 'issuer certificate is malformed', { cause: err });
  }
  if (!facts.isCa) throw new X509Error('ISSUER_INVALID', 'issuer certificate is not a CA');
  const mask = facts.keyUsageMask;
  if (mask !== undefined && (mask & (1 << KEY_USAGE_BIT.keyCertSign)) === 0) {
    throw new X509Error('ISSUER_INVALID', 'issuer certificate may not sign certificates');
  }
  if (privateKey.type !== 'private' || !cert.checkPrivateKey(privateKey)) {
    throw new X509Error('ISSUER_INVALID', 'private key does not match the issuer certificate');
  }

  const issuer: Issuer = Object.freeze({
    certPem: toPem(cert.raw, 'CERTIFICATE'),
    cert,
    serialHex: facts.serialHex,
  });
  internals.set(issuer, {
    signer: signerOf(privateKey, 'ISSUER_INVALID'),
    nameDer: Buffer.from(facts.subjectDer),
    authorityKeyIdExtensionDer: authorityKeyIdDer(facts.subjectKeyId ?? keyIdOf(facts.spkiDer)),
    notAfter: facts.notAfter,
  });
  return issuer;
}

/** The prepared internals of an issuer; throws ISSUER_INVALID for one not made by `loadIssuer`. */
export function internalsOf(issuer: Issuer): IssuerInternals {
  const found = internals.get(issuer);
  if (found === undefined) {
    throw new X509Error('ISSUER_INVALID', 'issuer was not prepared by loadIssuer');
  }
  return found;
}
