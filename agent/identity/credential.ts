import { X509Certificate } from 'node:crypto';
import { PalisadeError } from '../../certs/errors.js';
import { TrustStore, serialHexOf, verifySvid, type KeyPair } from '../../certs/x509/index.js';
import type { SignResponse } from '../../proto/index.js';

/** The workload's current X.509-SVID and its key. */
export interface WorkloadCredential {
  readonly spiffeId: string;
  /** Lowercase hex, no leading zero octets. */
  readonly serialHex: string;
  /** PKCS#8 PEM. Held in memory only: never written to disk, sent or logged. */
  readonly keyPem: string;
  /** Leaf then intermediate, PEM blocks concatenated. */
  readonly certChainPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * Builds the credential from a Sign answer after checking it is what was
 * asked for: the expected SPIFFE ID, a leaf over our own public key, and a
 * chain that reaches the trust bundle the CA sent. Throws PalisadeError
 * CERT_INVALID otherwise. Validity dates are those the CA returned; whether
 * they are current is the scheduler's business, not this check's.
 */
export function credentialFromSignResponse(
  response: SignResponse,
  key: KeyPair,
  expectedId: string,
): WorkloadCredential {
  const leafPem = response.certChainPem[0];
  if (leafPem === undefined) throw invalid('the CA returned an empty certificate chain');
  if (response.spiffeId !== expectedId) {
    throw invalid(`the CA issued ${response.spiffeId}, not ${expectedId}`);
  }

  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (err) {
    throw invalid('the CA returned an unreadable certificate', err);
  }
  if (!leaf.checkPrivateKey(key.privateKey)) {
    throw invalid('the issued certificate is not for our key');
  }

  // Checked at the CA's own notBefore: this proves the chain and the
  // X.509-SVID shape, and stays correct when the injected clock is not real.
  const notBeforeMs = response.notBeforeUnixMs;
  const verdict = verifySvid({
    chain: response.certChainPem,
    trust: new TrustStore(response.trustBundlePem),
    now: new Date(notBeforeMs + 1),
  });
  if (!verdict.ok) throw invalid(`the issued chain does not verify: ${verdict.detail}`);
  if (verdict.spiffeId !== expectedId) {
    throw invalid(`the issued certificate names ${verdict.spiffeId}, not ${expectedId}`);
  }

  return Object.freeze({
    spiffeId: expectedId,
    serialHex: serialHexOf(leaf),
    keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certChainPem: response.certChainPem.join(''),
    notBefore: new Date(notBeforeMs),
    notAfter: new Date(response.notAfterUnixMs),
  });
}

function invalid(message: string, cause?: unknown): PalisadeError {
  return new PalisadeError('CERT_INVALID', message, { cause });
}
