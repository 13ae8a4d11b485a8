import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

/** A CA made only for the webhook, and the webhook's serving certificate signed by it. */
export interface WebhookTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Lifetime of the webhook CA and certificate: the API server checks it on every call. */
export const WEBHOOK_TLS_TTL_SECONDS = 5 * 365 * 86400;

/**
 * Makes a self-signed CA and a serverAuth certificate for `dnsNames`
 * (RSA-2048, keys made by Node's crypto). The CA goes into the webhook
 * configuration's `caBundle`; its key is discarded, so nothing else can be
 * signed by it.
 */
export function createWebhookTls(dnsNames: readonly string[], now = new Date()): WebhookTls {
  const caKeys = rsaKeys();
  const leafKeys = rsaKeys();
  const notAfter = new Date(now.getTime() + WEBHOOK_TLS_TTL_SECONDS * 1000);
  const caName = [{ name: 'commonName', value: 'palisade-webhook-ca' }];

  const ca = forge.pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serial();
  ca.validity.notBefore = now;
  ca.validity.notAfter = notAfter;
  ca.setSubject(caName);
  ca.setIssuer(caName);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const leaf = forge.pki.createCertificate();
  leaf.publicKey = leafKeys.publicKey;
  leaf.serialNumber = serial();
  leaf.validity.notBefore = now;
  leaf.validity.notAfter = notAfter;
  leaf.setSubject([{ name: 'commonName', value: dnsNames[0] ?? 'palisade-webhook' }]);
  leaf.setIssuer(caName);
  leaf.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: dnsNames.map((value) => ({ type: 2, value })) },
  ]);
  leaf.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caPem: forge.pki.certificateToPem(ca),
    certPem: forge.pki.certificateToPem(leaf),
    keyPem: leafKeys.pem,
  };
}

function rsaKeys(): {
  publicKey: forge.pki.rsa.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
  pem: string;
} {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return {
    privateKey: forgeKey,
    publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e),
    pem,
  };
}

// A positive 16-byte serial (RFC 5280 4.1.2.2): the top bit cleared.
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}
