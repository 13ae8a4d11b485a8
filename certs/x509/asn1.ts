import { createHash, sign, type KeyObject } from 'node:crypto';

import { contentOf, expectTag, readChildren, readWhole, TAG } from './der-reader.js';
import { encodeOid } from './oid.js';

/** UTF8String, the type every Name attribute value is written as. */
const UTF8_STRING = 0x0c;

const oidCache = new Map<string, Buffer>();

/** Object identifiers used across certificates, CSRs and CRLs. */
export const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Key usage bits by their RFC 5280 4.2.1.3 position. */
export const KEY_USAGE_BIT = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

/** How a prepared key signs: the private key and its AlgorithmIdentifier DER. */
export interface Signer {
  readonly privateKey: KeyObject;
  readonly algorithmDer: Buffer;
}

/** Wraps already-encoded parts in one DER element of `tag`. */
export function derTlv(tag: number, parts: readonly Buffer[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  let header: Buffer;
  if (length < 0x80) {
    header = Buffer.from([tag, length]);
  } else if (length < 0x100) {
    header = Buffer.from([tag, 0x81, length]);
  } else if (length < 0x10000) {
    header = Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  } else {
    header = Buffer.from([tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
  }
  return Buffer.concat([header, ...parts]);
}

/** Encodes an OBJECT IDENTIFIER element (memoised: the same few OIDs recur). */
export function oidDer(oid: string): Buffer {
  let der = oidCache.get(oid);
  if (der === undefined) {
    der = derTlv(TAG.OID, [encodeOid(oid, 'CERT_MALFORMED')]);
    oidCache.set(oid, der);
  }
  return der;
}

/** Encodes an X.501 Name, one RDN per attribute, values as UTF8String. */
export function nameDer(attributes: readonly (readonly [oid: string, value: string])[]): Buffer {
  const rdns = attributes.map(([oid, value]) =>
    derTlv(TAG.SET, [
      derTlv(TAG.SEQUENCE, [oidDer(oid), derTlv(UTF8_STRING, [Buffer.from(value, 'utf8')])]),
    ]),
  );
  return derTlv(TAG.SEQUENCE, rdns);
}

/** Encodes a Time: UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5). */
export function timeDer(date: Date): Buffer {
  // Whole seconds only, as RFC 5280 forbids fractions: of the UTC form
  // `YYYY-MM-DDTHH:MM:SS.sssZ`, keep the digits up to the seconds.
  const digits = date.toISOString().slice(0, 19).replace(/\D/g, '');
  if (date.getUTCFullYear() < 2050) {
    return derTlv(TAG.UTC_TIME, [Buffer.from(`${digits.slice(2)}Z`, 'latin1')]);
  }
  return derTlv(TAG.GENERALIZED_TIME, [Buffer.from(`${digits}Z`, 'latin1')]);
}

/** Encodes an INTEGER from unsigned big-endian magnitude bytes. */
export function unsignedIntegerDer(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const content = (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
  return derTlv(TAG.INTEGER, [content.length === 0 ? Buffer.from([0]) : content]);
}

/** Encodes a non-negative safe integer as an INTEGER. */
export function smallIntegerDer(value: number): Buffer {
  const hex = value.toString(16);
  return unsignedIntegerDer(Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
}

/** Encodes one Extension: extnID, critical (only when true, as DER demands), extnValue. */
export function extensionDer(oid: string, critical: boolean, valueDer: Buffer): Buffer {
  const parts = [oidDer(oid)];
  if (critical) parts.push(Buffer.from([TAG.BOOLEAN, 1, 0xff]));
  parts.push(derTlv(TAG.OCTET_STRING, [valueDer]));
  return derTlv(TAG.SEQUENCE, parts);
}

/** Encodes a critical basicConstraints extension. */
export function basicConstraintsDer(isCa: boolean, pathLen?: number): Buffer {
  const parts: Buffer[] = [];
  if (isCa) parts.push(Buffer.from([TAG.BOOLEAN, 1, 0xff]));
  if (isCa && pathLen !== undefined) parts.push(smallIntegerDer(pathLen));
  return extensionDer(OID.basicConstraints, true, derTlv(TAG.SEQUENCE, parts));
}

/** Encodes a critical keyUsage extension from bit positions (see KEY_USAGE_BIT). */
export function keyUsageDer(bits: readonly number[]): Buffer {
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] as number) | (0x80 >> (bit & 7));
  // DER named bit lists drop trailing zero bits (X.690 11.2.2).
  const unused = 7 - (highest % 8);
  return extensionDer(OID.keyUsage, true, derTlv(TAG.BIT_STRING, [Buffer.from([unused]), bytes]));
}

/** Encodes a non-critical extKeyUsage extension. */
export function extKeyUsageDer(purposes: readonly string[]): Buffer {
  return extensionDer(OID.extKeyUsage, false, derTlv(TAG.SEQUENCE, purposes.map(oidDer)));
}

/** Encodes a subjectAltName extension holding URIs and, for tests, DNS names. */
export function subjectAltNameDer(
  names: { uris?: readonly string[]; dnsNames?: readonly string[] },
  critical: boolean,
): Buffer {
  const general = [
    ...(names.uris ?? []).map((uri) => derTlv(0x86, [Buffer.from(uri, 'latin1')])),
    ...(names.dnsNames ?? []).map((dns) => derTlv(0x82, [Buffer.from(dns, 'latin1')])),
  ];
  return extensionDer(OID.subjectAltName, critical, derTlv(TAG.SEQUENCE, general));
}

/** Encodes a non-critical subjectKeyIdentifier extension. */
export function subjectKeyIdDer(keyId: Buffer): Buffer {
  return extensionDer(OID.subjectKeyIdentifier, false, derTlv(TAG.OCTET_STRING, [keyId]));
}

/** Encodes a non-critical authorityKeyIdentifier extension holding keyIdentifier only. */
export function authorityKeyIdDer(keyId: Buffer): Buffer {
  return extensionDer(
    OID.authorityKeyIdentifier,
    false,
    derTlv(TAG.SEQUENCE, [derTlv(0x80, [keyId])]),
  );
}

/**
 * The key identifier of RFC 5280 4.2.1.2 method 1: SHA-1 of the
 * subjectPublicKey BIT STRING contents, unused-bits octet excluded.
 */
export function keyIdOf(spkiDer: Buffer): Buffer {
  const spki = readWhole(spkiDer, TAG.SEQUENCE, 'CERT_MALFORMED');
  const bits = expectTag(readChildren(spki, 'CERT_MALFORMED')[1], TAG.BIT_STRING, 'CERT_MALFORMED');
  return createHash('sha1').update(contentOf(bits).subarray(1)).digest();
}

/** The AlgorithmIdentifier a key of this family signs with (SHA-256 always). */
export function signatureAlgorithmDer(family: 'ec' | 'rsa'): Buffer {
  // RFC 5758 3.2: ECDSA identifiers carry no parameters; RFC 4055: RSA ones carry NULL.
  return family === 'ec'
    ? derTlv(TAG.SEQUENCE, [oidDer(OID.ecdsaWithSha256)])
    : derTlv(TAG.SEQUENCE, [oidDer(OID.sha256WithRsa), Buffer.from([0x05, 0x00])]);
}

/**
 * Signs a to-be-signed structure and wraps it as SEQUENCE { tbs, algorithm,
 * BIT STRING signature }, the shape shared by certificates, CSRs and CRLs.
 */
export function signAndWrap(tbsDer: Buffer, signer: Signer): Buffer {
  const signature = sign('sha256', tbsDer, signer.privateKey);
  return derTlv(TAG.SEQUENCE, [
    tbsDer,
    signer.algorithmDer,
    derTlv(TAG.BIT_STRING, [Buffer.from([0]), signature]),
  ]);
}
