import { randomFillSync } from 'node:crypto';

import { derTlv } from './asn1.js';
import { TAG } from './der-reader.js';
import { X509Error } from './errors.js';

const SERIAL_BYTES = 16;

/** A fresh certificate serial: its lowercase hex form and its INTEGER encoding. */
export interface Serial {
  readonly hex: string;
  readonly der: Buffer;
}

/**
 * Draws a 128-bit random serial. The top bits are forced to `01` so the
 * INTEGER is positive, needs no leading zero octet, and always prints as 32
 * lowercase hex characters (RFC 5280 4.1.2.2 allows at most 20 octets).
 */
export function newSerial(): Serial {
  const bytes = randomFillSync(Buffer.alloc(SERIAL_BYTES));
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return { hex: bytes.toString('hex'), der: derTlv(TAG.INTEGER, [bytes]) };
}

/**
 * Normalises the content octets of a parsed serial INTEGER: lowercase hex
 * without leading zero octets, the one form Palisade compares serials in.
 */
export function serialHexFromBytes(content: Buffer): string {
  let start = 0;
  while (start < content.length - 1 && content[start] === 0) start++;
  return content.subarray(start).toString('hex');
}

/**
 * Normalises a serial given as hex (any case, optional leading zeros, an
 * optional `0x`); throws X509Error CERT_MALFORMED when it is not hex.
 */
export function normaliseSerialHex(serialHex: string): string {
  const bare = serialHex.trim().toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]+$/.test(bare) || bare.length > 40) {
    throw new X509Error('CERT_MALFORMED', `serial is not a hex string of at most 20 octets`);
  }
  const even = bare.length % 2 ? `0${bare}` : bare;
  return serialHexFromBytes(Buffer.from(even, 'hex'));
}
