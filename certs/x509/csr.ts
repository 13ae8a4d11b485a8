import { verify, type KeyObject } from 'node:crypto';

import { parseSpiffeId } from '../spiffe-id.js';
import { derTlv, nameDer, oidDer, OID, signAndWrap, subjectAltNameDer } from './asn1.js';
import {
  contentOf,
  expectTag,
  rawOf,
  readChildren,
  readOid,
  readWhole,
  TAG,
  type DerElement,
} from './der-reader.js';
import { X509Error } from './errors.js';
import { noAltNames, parseGeneralNames, type SubjectAltNames } from './general-names.js';
import { keyShapeOf, signerOf, type KeyPair, type KeyType } from './keys.js';
import { fromPem, toPem } from './pem.js';
import { publicKeyFromSpki, spkiOf } from './spki.js';

/** Largest CSR accepted, PEM or DER, in bytes: real ones are under 2 KiB. */
export const MAX_CSR_BYTES = 16 * 1024;

/** A CSR whose self-signature checked out, with every SAN it asks for. */
export interface ParsedCsr extends SubjectAltNames {
  readonly publicKey: KeyObject;
  /** `rsa-2048` stands for every accepted RSA size; see `keyBits`. */
  readonly keyType: KeyType;
  /** 256 for P-256, the modulus length for RSA (2048..4096). */
  readonly keyBits: number;
}

const M = 'CSR_MALFORMED';
const PEM_LABELS = ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'];
const CSR_SUBJECT = nameDer([[OID.organizationName, 'Palisade']]);

// Signature algorithms a CSR may use, by key family, with their hash.
const SIGNATURE_ALGORITHMS: Record<string, { family: 'ec' | 'rsa'; hash: string }> = {
  [OID.ecdsaWithSha256]: { family: 'ec', hash: 'sha256' },
  [OID.ecdsaWithSha384]: { family: 'ec', hash: 'sha384' },
  [OID.ecdsaWithSha512]: { family: 'ec', hash: 'sha512' },
  [OID.sha256WithRsa]: { family: 'rsa', hash: 'sha256' },
  [OID.sha384WithRsa]: { family: 'rsa', hash: 'sha384' },
  [OID.sha512WithRsa]: { family: 'rsa', hash: 'sha512' },
};

/**
 * Makes a PKCS#10 request signed by `key`, subject `O=Palisade`, asking for
 * one URI SAN: `spiffeId`. Returns PEM. Throws SpiffeIdError for a bad ID.
 */
export function createCsr(opts: { key: KeyPair; spiffeId: string }): string {
  const spiffeId = parseSpiffeId(opts.spiffeId).uri;
  const extensionRequest = derTlv(TAG.SEQUENCE, [
    oidDer(OID.extensionRequest),
    derTlv(TAG.SET, [derTlv(TAG.SEQUENCE, [subjectAltNameDer({ uris: [spiffeId] }, false)])]),
  ]);
  const info = derTlv(TAG.SEQUENCE, [
    Buffer.from([TAG.INTEGER, 1, 0]),
    CSR_SUBJECT,
    spkiOf(opts.key.publicKey),
    derTlv(0xa0, [extensionRequest]),
  ]);
  const der = signAndWrap(info, signerOf(opts.key.privateKey, 'KEY_UNSUPPORTED'));
  return toPem(der, 'CERTIFICATE REQUEST');
}

/**
 * Parses a PKCS#10 request (PEM or DER), checks its self-signature and lists
 * every SAN it asks for. Throws X509Error: CSR_TOO_LARGE over 16 KiB,
 * CSR_MALFORMED for bad encoding, a wrong PEM label or trailing bytes,
 * CSR_KEY_UNSUPPORTED for keys other than P-256 and RSA 2048..4096, and
 * CSR_BAD_SIGNATURE when the signature or its algorithm does not hold.
 */
export function parseCsr(input: string | Buffer): ParsedCsr {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input?.length;
  if (typeof size !== 'number') throw new X509Error(M, 'CSR must be a PEM string or DER bytes');
  if (size > MAX_CSR_BYTES)
    throw new X509Error('CSR_TOO_LARGE', `CSR exceeds ${MAX_CSR_BYTES} bytes`);
  const der = typeof input === 'string' ? fromPem(input, PEM_LABELS, M) : input;

  try {
    return parseCsrDer(der);
  } catch (err) {
    if (err instanceof X509Error) throw err;
    throw new X509Error(M, 'CSR cannot be decoded', { cause: err });
  }
}

function parseCsrDer(der: Buffer): ParsedCsr {
  const [info, algorithm, signatureBits, ...extra] = readChildren(
    readWhole(der, TAG.SEQUENCE, M),
    M,
  );
  if (extra.length > 0) throw new X509Error(M, 'CSR has extra fields');
  const [version, subject, spki, attributes, ...rest] = readChildren(
    expectTag(info, TAG.SEQUENCE, M),
    M,
  );
  if (rest.length > 0) throw new X509Error(M, 'CSR info has extra fields');
  if (!contentOf(expectTag(version, TAG.INTEGER, M)).equals(Buffer.from([0]))) {
    throw new X509Error(M, 'CSR version is not 1');
  }
  expectTag(subject, TAG.SEQUENCE, M);
  if (attributes !== undefined) expectTag(attributes, 0xa0, M);

  const publicKey = readPublicKey(expectTag(spki, TAG.SEQUENCE, M));
  const shape = keyShapeOf(publicKey, 'CSR_KEY_UNSUPPORTED');
  checkSignature(rawOf(info as DerElement), algorithm, signatureBits, publicKey, shape.family);
  const altNames = attributes === undefined ? noAltNames() : readRequestedAltNames(attributes);

  return {
    publicKey,
    keyType: shape.family === 'ec' ? 'ecdsa-p256' : 'rsa-2048',
    keyBits: shape.bits,
    ...altNames,
  };
}

function readPublicKey(spki: DerElement): KeyObject {
  const algorithm = readChildren(expectTag(readChildren(spki, M)[0], TAG.SEQUENCE, M), M);
  const oid = readOid(algorithm[0], M);
  if (oid === OID.ecPublicKey) {
    const curve = algorithm[1]?.tag === TAG.OID ? readOid(algorithm[1], M) : 'explicit';
    if (curve !== OID.prime256v1) {
      throw new X509Error('CSR_KEY_UNSUPPORTED', `EC curve ${curve} is not supported`);
    }
  } else if (oid !== OID.rsaEncryption) {
    throw new X509Error('CSR_KEY_UNSUPPORTED', `key algorithm ${oid} is not supported`);
  }
  return publicKeyFromSpki(rawOf(spki), M);
}

function checkSignature(
  signed: Buffer,
  algorithm: DerElement | undefined,
  signatureBits: DerElement | undefined,
  publicKey: KeyObject,
  family: 'ec' | 'rsa',
): void {
  const oid = readOid(readChildren(expectTag(algorithm, TAG.SEQUENCE, M), M)[0], M);
  const bits = contentOf(expectTag(signatureBits, TAG.BIT_STRING, M));
  if (bits[0] !== 0) throw new X509Error(M, 'CSR signature has unused bits');

  const expected = SIGNATURE_ALGORITHMS[oid];
  if (expected === undefined || expected.family !== family) {
    throw new X509Error('CSR_BAD_SIGNATURE', `signature algorithm ${oid} does not fit the key`);
  }
  let valid: boolean;
  try {
    valid = verify(expected.hash, signed, publicKey, bits.subarray(1));
  } catch {
    // An undecodable signature value is just an invalid signature.
    valid = false;
  }
  if (!valid) throw new X509Error('CSR_BAD_SIGNATURE', 'CSR signature does not verify');
}

function readRequestedAltNames(attributes: DerElement): SubjectAltNames {
  let found: SubjectAltNames | undefined;
  for (const attribute of readChildren(attributes, M)) {
    const [type, values] = readChildren(expectTag(attribute, TAG.SEQUENCE, M), M);
    if (readOid(type, M) !== OID.extensionRequest) continue;
    const [extensions, ...more] = readChildren(expectTag(values, TAG.SET, M), M);
    if (more.length > 0 || found !== undefined) {
      throw new X509Error(M, 'CSR has more than one extension request');
    }
    let sawAltNames = false;
    found = noAltNames();
    for (const extension of readChildren(expectTag(extensions, TAG.SEQUENCE, M), M)) {
      const parts = readChildren(expectTag(extension, TAG.SEQUENCE, M), M);
      if (readOid(parts[0], M) !== OID.subjectAltName) continue;
      // Two SAN extensions could smuggle a second identity past a check of the first.
      if (sawAltNames) {
        throw new X509Error(M, 'CSR requests subjectAltName twice');
      }
      const value = contentOf(expectTag(parts[parts.length - 1], TAG.OCTET_STRING, M));
      found = parseGeneralNames(value, M);
      sawAltNames = true;
    }
  }
  return found ?? noAltNames();
}
