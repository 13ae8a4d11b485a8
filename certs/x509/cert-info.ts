import type { X509Certificate } from 'node:crypto';

import { parseCertificateDer } from './cert-facts.js';
import { svidIdOf } from './verify.js';

/**
 * The SPIFFE ID of a certificate: its URI SAN when it has exactly one and
 * that one is a valid `spiffe://` ID (the X.509-SVID rule), else undefined.
 */
export function certSpiffeId(cert: X509Certificate): string | undefined {
  try {
    return svidIdOf(parseCertificateDer(cert.raw));
  } catch {
    // A certificate we cannot read carries no identity we could vouch for.
    return undefined;
  }
}

/**
 * The serial of a certificate in Palisade's one comparable form: lowercase
 * hex without leading zero octets.
 */
export function serialHexOf(cert: X509Certificate): string {
  const hex = cert.serialNumber.toLowerCase().replace(/^-/, '');
  const even = hex.length % 2 ? `0${hex}` : hex;
  return even.replace(/^(00)+(?=..)/, '');
}
