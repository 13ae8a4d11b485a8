import { verify, type KeyObject } from 'node:crypto';

import { OID } from './asn1.js';
import {
  contentOf,
  expectTag,
  rawOf,
  readChildren,
  readOid,
  readTime,
  readWhole,
  TAG,
  type DerElement,
} from './der-reader.js';
import { X509Error } from './errors.js';
import { parseGeneralNames, type SubjectAltNames } from './general-names.js';
import { serialHexFromBytes } from './serial.js';
import { publicKeyFromSpki } from './spki.js';

/** What Palisade needs to know about a certificate, read once from its DER. */
export interface CertFacts {
  readonly der: Buffer;
  /** The exact TBSCertificate bytes the signature covers. */
  readonly tbsDer: Buffer;
  readonly signatureAlgorithmOid: string;
  readonly signature: Buffer;
  readonly serialHex: string;
  readonly issuerDer: Buffer;
  readonly subjectDer: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spkiDer: Buffer;
  readonly isCa: boolean;
  readonly pathLen: number | undefined;
  /** Key usage as a bit mask of `1 << KEY_USAGE_BIT.x`, undefined when absent. */
  readonly keyUsageMask: number | undefined;
  readonly altNames: SubjectAltNames | undefined;
  readonly subjectKeyId: Buffer | undefined;
  readonly authorityKeyId: Buffer | undefined;
  /** Critical extensions this library does not understand (RFC 5280 4.2: reject). */
  readonly unknownCriticalOids: readonly string[];
}

const M = 'CERT_MALFORMED';

// Hash names by signature algorithm, per key family.
const EC_HASHES: Record<string, string> = {
  [OID.ecdsaWithSha256]: 'sha256',
  [OID.ecdsaWithSha384]: 'sha384',
  [OID.ecdsaWithSha512]: 'sha512',
};
const RSA_HASHES: Record<string, string> = {
  [OID.sha256WithRsa]: 'sha256',
  [OID.sha384WithRsa]: 'sha384',
  [OID.sha512WithRsa]: 'sha512',
};

/** Parses a DER certificate; throws X509Error CERT_MALFORMED on any encoding fault. */
export function parseCertificateDer(der: Buffer): CertFacts {
  try {
    return parseUnchecked(der);
  } catch (err) {
    if (err instanceof X509Error) throw err;
    throw new X509Error(M, 'certificate cannot be decoded', { cause: err });
  }
}

function parseUnchecked(der: Buffer): CertFacts {
  const [tbs, outerAlg, signatureBits, ...extra] = readChildren(readWhole(der, TAG.SEQUENCE, M), M);
  if (extra.length > 0) throw new X509Error(M, 'certificate has extra fields');
  const fields = readChildren(expectTag(tbs, TAG.SEQUENCE, M), M);
  let index = fields[0]?.tag === 0xa0 ? 1 : 0;
  const take = (): DerElement | undefined => fields[index++];

  const serial = expectTag(take(), TAG.INTEGER, M);
  const innerAlg = expectTag(take(), TAG.SEQUENCE, M);
  if (!rawOf(innerAlg).equals(rawOf(expectTag(outerAlg, TAG.SEQUENCE, M)))) {
    // RFC 5280 4.1.1.2: the two algorithm fields must be identical.
    throw new X509Error(M, 'signature algorithm fields differ');
  }
  const issuer = expectTag(take(), TAG.SEQUENCE, M);
  const [notBefore, notAfter] = readChildren(expectTag(take(), TAG.SEQUENCE, M), M);
  const subject = expectTag(take(), TAG.SEQUENCE, M);
  const spki = expectTag(take(), TAG.SEQUENCE, M);
  let extensions: DerElement | undefined;
  for (let field = take(); field !== undefined; field = take()) {
    if (field.tag === 0xa3) extensions = field;
  }
  const bits = contentOf(expectTag(signatureBits, TAG.BIT_STRING, M));
  if (bits[0] !== 0) throw new X509Error(M, 'signature has unused bits');

  return {
    der,
    tbsDer: rawOf(tbs as DerElement),
    signatureAlgorithmOid: readOid(readChildren(innerAlg, M)[0], M),
    signature: bits.subarray(1),
    serialHex: serialHexFromBytes(contentOf(serial)),
    issuerDer: rawOf(issuer),
    subjectDer: rawOf(subject),
    notBefore: readTime(notBefore, M),
    notAfter: readTime(notAfter, M),
    spkiDer: rawOf(spki),
    ...readExtensions(extensions),
  };
}

/**
 * Checks that `child` was signed by the holder of `issuerKey`, with a
 * signature algorithm matching the key's family. Never throws.
 */
export function isSignedBy(child: CertFacts, issuerKey: KeyObject): boolean {
  const table = issuerKey.asymmetricKeyType === 'ec' ? EC_HASHES : RSA_HASHES;
  const hash = table[child.signatureAlgorithmOid];
  if (hash === undefined) return false;
  try {
    return verify(hash, child.tbsDer, issuerKey, child.signature);
  } catch {
    // A signature that cannot even be decoded is simply not valid.
    return false;
  }
}

/** The certificate's public key as a KeyObject; throws X509Error CERT_MALFORMED. */
export function publicKeyOf(facts: CertFacts): KeyObject {
  return publicKeyFromSpki(facts.spkiDer, M);
}

type ExtensionFacts = Pick<
  CertFacts,
  | 'isCa'
  | 'pathLen'
  | 'keyUsageMask'
  | 'altNames'
  | 'subjectKeyId'
  | 'authorityKeyId'
  | 'unknownCriticalOids'
>;

function readExtensions(wrapper: DerElement | undefined): ExtensionFacts {
  const unknownCriticalOids: string[] = [];
  const facts: { -readonly [K in keyof ExtensionFacts]: ExtensionFacts[K] } = {
    isCa: false,
    pathLen: undefined,
    keyUsageMask: undefined,
    altNames: undefined,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    unknownCriticalOids,
  };
  if (wrapper === undefined) return facts;

  const seen = new Set<string>();
  const list = expectTag(readChildren(wrapper, M)[0], TAG.SEQUENCE, M);
  for (const extension of readChildren(list, M)) {
    const parts = readChildren(expectTag(extension, TAG.SEQUENCE, M), M);
    const oid = readOid(parts[0], M);
    const critical = parts.length === 3 && contentOf(parts[1] as DerElement)[0] === 0xff;
    const value = contentOf(expectTag(parts[parts.length - 1], TAG.OCTET_STRING, M));
    // RFC 5280 4.2: a certificate must not include more than one instance of an extension.
    if (seen.has(oid)) throw new X509Error(M, `extension ${oid} appears twice`);
    seen.add(oid);

    if (oid === OID.basicConstraints) {
      const items = readChildren(readWhole(value, TAG.SEQUENCE, M), M);
      let at = 0;
      if (items[at]?.tag === TAG.BOOLEAN)
        facts.isCa = contentOf(items[at++] as DerElement)[0] === 0xff;
      if (items[at]?.tag === TAG.INTEGER) facts.pathLen = readSmallInt(items[at] as DerElement);
    } else if (oid === OID.keyUsage) {
      facts.keyUsageMask = readBitMask(contentOf(readWhole(value, TAG.BIT_STRING, M)));
    } else if (oid === OID.subjectAltName) {
      facts.altNames = parseGeneralNames(value, M);
    } else if (oid === OID.subjectKeyIdentifier) {
      facts.subjectKeyId = Buffer.from(contentOf(readWhole(value, TAG.OCTET_STRING, M)));
    } else if (oid === OID.authorityKeyIdentifier) {
      const seq = readWhole(value, TAG.SEQUENCE, M);
      const keyId = readChildren(seq, M).find((item) => item.tag === 0x80);
      if (keyId !== undefined) facts.authorityKeyId = Buffer.from(contentOf(keyId));
    } else if (critical && oid !== OID.extKeyUsage) {
      unknownCriticalOids.push(oid);
    }
  }
  return facts;
}

function readBitMask(content: Buffer): number {
  const unused = content[0] ?? 0;
  const bitCount = (content.length - 1) * 8 - unused;
  let mask = 0;
  for (let bit = 0; bit < Math.min(bitCount, 16); bit++) {
    if ((content[1 + (bit >> 3)] as number) & (0x80 >> (bit & 7))) mask |= 1 << bit;
  }
  return mask;
}

function readSmallInt(element: DerElement): number {
  const content = contentOf(element);
  if (content.length === 0 || content.length > 4 || (content[0] as number) & 0x80) {
    throw new X509Error(M, 'integer out of range');
  }
  return content.readUIntBE(0, content.length);
}
