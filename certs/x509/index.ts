// The trust plane's X.509 toolkit: keys, certificates, CSRs, CRLs and SVID
// chain checks. DER is written and read by the small codec here, with no
// ASN.1 library, so the agent's CSR path stays light; keys, signing and
// verifying stay in Node's crypto. It depends on nothing in agent/ and on
// nothing in certs/ beyond errors.ts and spiffe-id.ts.

export {
  createIntermediateCertificate,
  createLeafCertificate,
  createRootCertificate,
  type IssuedCertificate,
} from './certificate.js';
export { createCrl, CRL_REASONS, type CrlEntry, type CrlReason } from './crl.js';
export { createCsr, MAX_CSR_BYTES, parseCsr, type ParsedCsr } from './csr.js';
export { X509Error, type X509ErrorCode } from './errors.js';
export { loadIssuer, type Issuer } from './issuer.js';
export {
  generateKeyPair,
  generateKeyPairSync,
  KEY_TYPES,
  keyTypeOf,
  type KeyPair,
  type KeyType,
} from './keys.js';
export { splitPemChain } from './pem.js';
export { normaliseSerialHex } from './serial.js';
export { certSpiffeId, serialHexOf } from './cert-info.js';
export { TrustStore } from './trust-store.js';
export { verifySvid, type SvidRejection, type SvidVerdict } from './verify.js';
