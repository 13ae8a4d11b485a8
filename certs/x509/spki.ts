import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

import { derTlv, oidDer, OID, unsignedIntegerDer } from './asn1.js';
import { contentOf, expectTag, readChildren, readOid, readWhole, TAG } from './der-reader.js';
import { X509Error, type X509ErrorCode } from './errors.js';

// Node's DER key encoder and decoder go through OpenSSL 3's provider lookup
// and cost ~150 µs per call, more than an ECDSA signature. JWK import and
// export take 4-50 µs, so SubjectPublicKeyInfo is assembled and taken apart
// here, byte-identical to what OpenSSL writes (the tests compare the two).

const EC_ALGORITHM = derTlv(TAG.SEQUENCE, [oidDer(OID.ecPublicKey), oidDer(OID.prime256v1)]);
const RSA_ALGORITHM = derTlv(TAG.SEQUENCE, [oidDer(OID.rsaEncryption), Buffer.from([0x05, 0x00])]);
const P256_COORDINATE_BYTES = 32;

const encoded = new WeakMap<KeyObject, Buffer>();

/** The DER SubjectPublicKeyInfo of a public or private key, memoised per KeyObject. */
export function spkiOf(key: KeyObject): Buffer {
  const cached = encoded.get(key);
  if (cached !== undefined) return cached;

  const jwk = key.export({ format: 'jwk' });
  let spki: Buffer;
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && jwk.x !== undefined && jwk.y !== undefined) {
    const point = [Buffer.from([0x04]), b64url(jwk.x), b64url(jwk.y)];
    spki = derTlv(TAG.SEQUENCE, [
      EC_ALGORITHM,
      derTlv(TAG.BIT_STRING, [Buffer.from([0]), ...point]),
    ]);
  } else if (jwk.kty === 'RSA' && jwk.n !== undefined && jwk.e !== undefined) {
    const rsaKey = derTlv(TAG.SEQUENCE, [
      unsignedIntegerDer(b64url(jwk.n)),
      unsignedIntegerDer(b64url(jwk.e)),
    ]);
    spki = derTlv(TAG.SEQUENCE, [
      RSA_ALGORITHM,
      derTlv(TAG.BIT_STRING, [Buffer.from([0]), rsaKey]),
    ]);
  } else {
    spki = key.export({ type: 'spki', format: 'der' });
  }
  encoded.set(key, spki);
  return spki;
}

/**
 * Reads a DER SubjectPublicKeyInfo into a KeyObject. P-256 points and RSA
 * keys take the fast JWK route; anything else goes to OpenSSL's decoder.
 * Throws X509Error with `code` when the key cannot be read.
 */
export function publicKeyFromSpki(spkiDer: Buffer, code: X509ErrorCode): KeyObject {
  let key: KeyObject;
  try {
    const jwk = toJwk(spkiDer, code);
    key =
      jwk === undefined
        ? createPublicKey({ key: spkiDer, format: 'der', type: 'spki' })
        : createPublicKey({ key: jwk, format: 'jwk' });
  } catch (err) {
    throw new X509Error(code, 'public key cannot be read', { cause: err });
  }
  encoded.set(key, Buffer.from(spkiDer));
  return key;
}

function toJwk(spkiDer: Buffer, code: X509ErrorCode): JsonWebKey | undefined {
  const [algorithm, bits] = readChildren(readWhole(spkiDer, TAG.SEQUENCE, code), code);
  const params = readChildren(expectTag(algorithm, TAG.SEQUENCE, code), code);
  const oid = readOid(params[0], code);
  const keyBits = contentOf(expectTag(bits, TAG.BIT_STRING, code));
  if (keyBits[0] !== 0) throw new X509Error(code, 'public key has unused bits');
  const body = keyBits.subarray(1);

  if (
    oid === OID.ecPublicKey &&
    params[1]?.tag === TAG.OID &&
    readOid(params[1], code) === OID.prime256v1
  ) {
    // Only uncompressed points have the fixed layout 04 || x || y.
    if (body.length !== 1 + 2 * P256_COORDINATE_BYTES || body[0] !== 0x04) return undefined;
    const x = body.subarray(1, 1 + P256_COORDINATE_BYTES);
    const y = body.subarray(1 + P256_COORDINATE_BYTES);
    return { kty: 'EC', crv: 'P-256', x: x.toString('base64url'), y: y.toString('base64url') };
  }
  if (oid === OID.rsaEncryption) {
    const [n, e, ...rest] = readChildren(readWhole(body, TAG.SEQUENCE, code), code);
    if (rest.length > 0) throw new X509Error(code, 'RSA public key has extra fields');
    return {
      kty: 'RSA',
      n: magnitude(contentOf(expectTag(n, TAG.INTEGER, code))).toString('base64url'),
      e: magnitude(contentOf(expectTag(e, TAG.INTEGER, code))).toString('base64url'),
    };
  }
  return undefined;
}

function magnitude(content: Buffer): Buffer {
  let start = 0;
  while (start < content.length - 1 && content[start] === 0) start++;
  return content.subarray(start);
}

function b64url(text: string): Buffer {
  return Buffer.from(text, 'base64url');
}
