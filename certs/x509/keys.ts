import {
  generateKeyPair as generateKeyPairCallback,
  generateKeyPairSync as generateNodeKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';

import { signatureAlgorithmDer, type Signer } from './asn1.js';
import { X509Error, type X509ErrorCode } from './errors.js';

const generateKeyPairAsync = promisify(generateKeyPairCallback);

/** The key types Palisade makes: ECDSA on P-256 (the default) or RSA with 2048 bits. */
export type KeyType = 'ecdsa-p256' | 'rsa-2048';

/** Every supported key type, default first. */
export const KEY_TYPES: readonly KeyType[] = Object.freeze(['ecdsa-p256', 'rsa-2048']);

/** A private key and its public half, both Node KeyObjects, never serialised here. */
export interface KeyPair {
  readonly type: KeyType;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** A key's family and size, as far as signing and checking need to know. */
export interface KeyShape {
  readonly family: 'ec' | 'rsa';
  readonly bits: number;
}

const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 4096;

/** Makes a key pair off the main thread (RSA takes tens of milliseconds). */
export async function generateKeyPair(type: KeyType = 'ecdsa-p256'): Promise<KeyPair> {
  checkedType(type);
  const pair =
    type === 'rsa-2048'
      ? await generateKeyPairAsync('rsa', { modulusLength: 2048 })
      : await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return Object.freeze({ type, ...pair });
}

/** Makes a key pair synchronously; fine for P-256, blocks ~50 ms for RSA. */
export function generateKeyPairSync(type: KeyType = 'ecdsa-p256'): KeyPair {
  checkedType(type);
  const pair =
    type === 'rsa-2048'
      ? generateNodeKeyPairSync('rsa', { modulusLength: 2048 })
      : generateNodeKeyPairSync('ec', { namedCurve: 'P-256' });
  return Object.freeze({ type, ...pair });
}

/**
 * Names the type of a public or private key. Throws X509Error KEY_UNSUPPORTED
 * for anything other than P-256 or 2048-bit RSA.
 */
export function keyTypeOf(key: KeyObject): KeyType {
  const shape = keyShapeOf(key, 'KEY_UNSUPPORTED');
  if (shape.family === 'rsa' && shape.bits !== 2048) {
    throw new X509Error('KEY_UNSUPPORTED', `RSA keys must have 2048 bits, not ${shape.bits}`);
  }
  return shape.family === 'ec' ? 'ecdsa-p256' : 'rsa-2048';
}

/**
 * Describes a key accepted anywhere in Palisade: P-256, or RSA (PKCS#1, not
 * PSS) with 2048 to 4096 bits. Throws X509Error with `code` otherwise.
 */
export function keyShapeOf(key: KeyObject, code: X509ErrorCode): KeyShape {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1') {
      throw new X509Error(code, `EC curve ${details.namedCurve ?? 'unknown'} is not supported`);
    }
    return { family: 'ec', bits: 256 };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
      throw new X509Error(code, `RSA keys need ${RSA_MIN_BITS}..${RSA_MAX_BITS} bits, not ${bits}`);
    }
    return { family: 'rsa', bits };
  }
  throw new X509Error(code, `key type ${key.asymmetricKeyType ?? 'unknown'} is not supported`);
}

/** Prepares a private key for signing: ECDSA or RSA PKCS#1 v1.5, both over SHA-256. */
export function signerOf(privateKey: KeyObject, code: X509ErrorCode): Signer {
  const { family } = keyShapeOf(privateKey, code);
  return { privateKey, algorithmDer: signatureAlgorithmDer(family) };
}

function checkedType(type: KeyType): KeyType {
  if (!KEY_TYPES.includes(type)) throw new X509Error('KEY_UNSUPPORTED', `unknown key type ${type}`);
  return type;
}
