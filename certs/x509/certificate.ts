import type { KeyObject } from 'node:crypto';

import { parseSpiffeId, parseTrustDomain } from '../spiffe-id.js';
import {
  authorityKeyIdDer,
  basicConstraintsDer,
  derTlv,
  extKeyUsageDer,
  keyIdOf,
  KEY_USAGE_BIT,
  keyUsageDer,
  nameDer,
  OID,
  signAndWrap,
  subjectAltNameDer,
  subjectKeyIdDer,
  timeDer,
  type Signer,
} from './asn1.js';
import { TAG } from './der-reader.js';
import { X509Error } from './errors.js';
import { internalsOf, type Issuer } from './issuer.js';
import { keyShapeOf, signerOf, type KeyPair } from './keys.js';
import { toPem } from './pem.js';
import { newSerial } from './serial.js';
import { spkiOf } from './spki.js';

/** A freshly signed certificate in both encodings. */
export interface IssuedCertificate {
  readonly pem: string;
  readonly der: Buffer;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Everything a certificate body needs besides serial, issuer and signature. */
export interface CertificateSpec {
  readonly subjectDer: Buffer;
  readonly spkiDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Encoded Extension elements, in order. */
  readonly extensions: readonly Buffer[];
}

/** How long a root lives unless told otherwise: ten years. */
export const DEFAULT_ROOT_TTL_SECONDS = 10 * 365 * 24 * 3600;

/** How long an intermediate lives unless told otherwise: one year. */
export const DEFAULT_INTERMEDIATE_TTL_SECONDS = 365 * 24 * 3600;

/** Clock skew allowance: certificates start this long before they are made. */
export const BACKDATE_SECONDS = 60;

const VERSION_3 = Buffer.from([0xa0, 0x03, TAG.INTEGER, 0x01, 0x02]);
const CA_KEY_USAGE = keyUsageDer([KEY_USAGE_BIT.keyCertSign, KEY_USAGE_BIT.cRLSign]);

// Leaf parts that never change, encoded once. Leaf subjects are `O=Palisade`
// with no CN, so the SAN extension stays non-critical (RFC 5280 4.2.1.6 makes
// it critical only for an empty subject).
const LEAF_SUBJECT = nameDer([[OID.organizationName, 'Palisade']]);
const LEAF_BASIC_CONSTRAINTS = basicConstraintsDer(false);
const LEAF_KEY_USAGE_EC = keyUsageDer([KEY_USAGE_BIT.digitalSignature]);
const LEAF_KEY_USAGE_RSA = keyUsageDer([
  KEY_USAGE_BIT.digitalSignature,
  KEY_USAGE_BIT.keyEncipherment,
]);
const LEAF_EXT_KEY_USAGE = extKeyUsageDer([OID.serverAuth, OID.clientAuth]);

/**
 * Makes a self-signed root CA for `trustDomain`: CA:true, keyCertSign and
 * cRLSign, URI SAN `spiffe://<td>`, ten years unless `ttlSeconds` says otherwise.
 */
export function createRootCertificate(opts: {
  key: KeyPair;
  trustDomain: string;
  ttlSeconds?: number;
  now?: Date;
}): IssuedCertificate {
  const trustDomain = parseTrustDomain(opts.trustDomain);
  const spkiDer = spkiOf(opts.key.publicKey);
  const keyId = keyIdOf(spkiDer);
  const subjectDer = caName(`Palisade Root CA ${trustDomain}`);
  const { notBefore, notAfter } = validity(opts.now, opts.ttlSeconds ?? DEFAULT_ROOT_TTL_SECONDS);

  const spec: CertificateSpec = {
    subjectDer,
    spkiDer,
    notBefore,
    notAfter,
    extensions: [
      basicConstraintsDer(true),
      CA_KEY_USAGE,
      subjectKeyIdDer(keyId),
      authorityKeyIdDer(keyId),
      subjectAltNameDer({ uris: [`spiffe://${trustDomain}`] }, false),
    ],
  };
  return buildCertificate(spec, signerOf(opts.key.privateKey, 'KEY_UNSUPPORTED'), subjectDer);
}

/**
 * Makes an intermediate CA signed by `issuer`: CA:true with pathLen 0, one
 * year unless `ttlSeconds` says otherwise, never outliving its issuer.
 */
export function createIntermediateCertificate(opts: {
  publicKey: KeyObject;
  issuer: Issuer;
  trustDomain: string;
  ttlSeconds?: number;
  now?: Date;
}): IssuedCertificate {
  const trustDomain = parseTrustDomain(opts.trustDomain);
  const issuer = internalsOf(opts.issuer);
  const spkiDer = spkiOf(opts.publicKey);
  const ttlSeconds = opts.ttlSeconds ?? DEFAULT_INTERMEDIATE_TTL_SECONDS;
  const { notBefore, notAfter } = validity(opts.now, ttlSeconds, issuer.notAfter);

  const spec: CertificateSpec = {
    subjectDer: caName(`Palisade Intermediate CA ${trustDomain}`),
    spkiDer,
    notBefore,
    notAfter,
    extensions: [
      basicConstraintsDer(true, 0),
      CA_KEY_USAGE,
      subjectKeyIdDer(keyIdOf(spkiDer)),
      issuer.authorityKeyIdExtensionDer,
    ],
  };
  return buildCertificate(spec, issuer.signer, issuer.nameDer);
}

/**
 * Makes an X.509-SVID leaf for `spiffeId` signed by `issuer`. Its lifetime is
 * `ttlSeconds`, cut short at the issuer's own expiry. Throws SpiffeIdError
 * for a bad ID and X509Error KEY_UNSUPPORTED for an unsupported key.
 */
export function createLeafCertificate(opts: {
  publicKey: KeyObject;
  spiffeId: string;
  issuer: Issuer;
  ttlSeconds: number;
  now?: Date;
}): IssuedCertificate {
  const spiffeId = parseSpiffeId(opts.spiffeId).uri;
  const issuer = internalsOf(opts.issuer);
  const { family } = keyShapeOf(opts.publicKey, 'KEY_UNSUPPORTED');
  const spkiDer = spkiOf(opts.publicKey);
  const { notBefore, notAfter } = validity(opts.now, opts.ttlSeconds, issuer.notAfter);

  const spec: CertificateSpec = {
    subjectDer: LEAF_SUBJECT,
    spkiDer,
    notBefore,
    notAfter,
    extensions: [
      LEAF_BASIC_CONSTRAINTS,
      family === 'rsa' ? LEAF_KEY_USAGE_RSA : LEAF_KEY_USAGE_EC,
      LEAF_EXT_KEY_USAGE,
      subjectKeyIdDer(keyIdOf(spkiDer)),
      issuer.authorityKeyIdExtensionDer,
      // X.509-SVID: exactly one URI SAN, the SPIFFE ID.
      subjectAltNameDer({ uris: [spiffeId] }, false),
    ],
  };
  return buildCertificate(spec, issuer.signer, issuer.nameDer);
}

/**
 * Assembles, signs and encodes a v3 certificate with a fresh random serial.
 * Low level: no SVID rule is enforced, which lets tests build bad shapes.
 */
export function buildCertificate(
  spec: CertificateSpec,
  signer: Signer,
  issuerNameDer: Buffer,
): IssuedCertificate {
  const serial = newSerial();
  const tbs = derTlv(TAG.SEQUENCE, [
    VERSION_3,
    serial.der,
    signer.algorithmDer,
    issuerNameDer,
    derTlv(TAG.SEQUENCE, [timeDer(spec.notBefore), timeDer(spec.notAfter)]),
    spec.subjectDer,
    spec.spkiDer,
    derTlv(0xa3, [derTlv(TAG.SEQUENCE, spec.extensions)]),
  ]);
  const der = signAndWrap(tbs, signer);
  return {
    pem: toPem(der, 'CERTIFICATE'),
    der,
    serialHex: serial.hex,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
  };
}

/** The signing internals of an issuer, for tests that build odd certificates. */
export function issuerSigning(issuer: Issuer): { signer: Signer; nameDer: Buffer } {
  const { signer, nameDer } = internalsOf(issuer);
  return { signer, nameDer };
}

function caName(commonName: string): Buffer {
  return nameDer([
    [OID.organizationName, 'Palisade'],
    [OID.commonName, commonName],
  ]);
}

function validity(
  now: Date | undefined,
  ttlSeconds: number,
  capAt?: Date,
): { notBefore: Date; notAfter: Date } {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new X509Error('CERT_MALFORMED', `ttlSeconds must be a positive integer: ${ttlSeconds}`);
  }
  const nowMs = Math.floor((now ?? new Date()).getTime() / 1000) * 1000;
  const notBefore = new Date(nowMs - BACKDATE_SECONDS * 1000);
  const wanted = nowMs + ttlSeconds * 1000;
  // A certificate outliving its issuer would fail path validation early.
  const notAfter = new Date(capAt === undefined ? wanted : Math.min(wanted, capAt.getTime()));
  return { notBefore, notAfter };
}
