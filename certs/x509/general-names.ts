import { contentOf, readChildren, readWhole, TAG } from './der-reader.js';
import { X509Error, type X509ErrorCode } from './errors.js';

/** Every subject alternative name found, sorted by kind, so callers can refuse extras. */
export interface SubjectAltNames {
  readonly uris: string[];
  readonly dnsNames: string[];
  readonly ipAddresses: string[];
  readonly emails: string[];
  /** otherName, x400Address, directoryName, ediPartyName and registeredID entries. */
  readonly otherSanCount: number;
}

// GeneralName CHOICE tags (RFC 5280 4.2.1.6), all context-specific and implicit.
const RFC822_NAME = 0x81;
const DNS_NAME = 0x82;
const URI = 0x86;
const IP_ADDRESS = 0x87;

/** An empty set of names, for inputs that carry no subjectAltName at all. */
export function noAltNames(): SubjectAltNames {
  return { uris: [], dnsNames: [], ipAddresses: [], emails: [], otherSanCount: 0 };
}

/**
 * Decodes the extnValue of a subjectAltName extension (a GeneralNames
 * SEQUENCE). Throws X509Error with `code` on bad encoding or an empty list.
 */
export function parseGeneralNames(valueDer: Buffer, code: X509ErrorCode): SubjectAltNames {
  const names = readChildren(readWhole(valueDer, TAG.SEQUENCE, code), code);
  if (names.length === 0) throw new X509Error(code, 'subjectAltName is empty');

  const result = { ...noAltNames(), otherSanCount: 0 };
  for (const name of names) {
    const value = contentOf(name);
    if (name.tag === URI) result.uris.push(ia5(value, code));
    else if (name.tag === DNS_NAME) result.dnsNames.push(ia5(value, code));
    else if (name.tag === RFC822_NAME) result.emails.push(ia5(value, code));
    else if (name.tag === IP_ADDRESS) result.ipAddresses.push(formatIp(value, code));
    else result.otherSanCount++;
  }
  return result;
}

function ia5(value: Buffer, code: X509ErrorCode): string {
  // IA5String is 7-bit ASCII; anything else hides look-alike characters.
  for (const byte of value) {
    if (byte > 0x7e || byte < 0x20) throw new X509Error(code, 'SAN is not printable ASCII');
  }
  return value.toString('latin1');
}

function formatIp(value: Buffer, code: X509ErrorCode): string {
  if (value.length === 4) return Array.from(value).join('.');
  if (value.length !== 16) throw new X509Error(code, 'SAN IP address has a bad length');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(value.readUInt16BE(i).toString(16));
  // The URL parser prints IPv6 in its canonical compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
