import { X509Error, type X509ErrorCode } from './errors.js';
import { decodeOid } from './oid.js';

/** One DER element located inside a buffer, without copying its bytes. */
export interface DerElement {
  /** The identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset just past the last content octet. */
  readonly end: number;
  /** The buffer the offsets point into. */
  readonly buf: Buffer;
}

/** Universal and context tags used by the certificate, CSR and CRL readers. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/**
 * Reads the element that starts at `offset`. Only definite, minimal lengths
 * are accepted (DER), and the element must fit inside `limit`; anything else
 * throws X509Error with `code`.
 */
export function readElement(
  buf: Buffer,
  offset: number,
  limit: number,
  code: X509ErrorCode,
): DerElement {
  if (offset + 2 > limit) throw new X509Error(code, 'DER element truncated');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new X509Error(code, 'DER high tag numbers are not used here');

  let length = buf[offset + 1] as number;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    // Four length octets already allow 4 GiB; certificates never come close.
    if (octets === 0 || octets > 4) throw new X509Error(code, 'DER length form not allowed');
    if (contentStart + octets > limit) throw new X509Error(code, 'DER length truncated');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (buf[contentStart + i] as number);
    contentStart += octets;
    // DER demands the shortest length encoding.
    if (length < 0x80 || buf[offset + 2] === 0) throw new X509Error(code, 'DER length not minimal');
  }

  const end = contentStart + length;
  if (end > limit) throw new X509Error(code, 'DER element overruns its container');
  return { tag, start: offset, contentStart, end, buf };
}

/** Returns the direct children of a constructed element, in order. */
export function readChildren(parent: DerElement, code: X509ErrorCode): DerElement[] {
  if ((parent.tag & 0x20) === 0) throw new X509Error(code, 'DER element is not constructed');
  const children: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readElement(parent.buf, offset, parent.end, code);
    children.push(child);
    offset = child.end;
  }
  return children;
}

/**
 * Reads a buffer that must hold exactly one element of `tag`, with no trailing
 * bytes; throws X509Error with `code` otherwise.
 */
export function readWhole(buf: Buffer, tag: number, code: X509ErrorCode): DerElement {
  const element = readElement(buf, 0, buf.length, code);
  if (element.tag !== tag) throw new X509Error(code, 'unexpected DER tag');
  if (element.end !== buf.length) throw new X509Error(code, 'trailing bytes after DER element');
  return element;
}

/** Asserts an element's tag, returning the element for chaining. */
export function expectTag(
  element: DerElement | undefined,
  tag: number,
  code: X509ErrorCode,
): DerElement {
  if (element === undefined || element.tag !== tag) {
    throw new X509Error(code, `expected DER tag 0x${tag.toString(16)}`);
  }
  return element;
}

/** The whole encoding (header and content) of an element, sharing memory. */
export function rawOf(element: DerElement): Buffer {
  return element.buf.subarray(element.start, element.end);
}

/** The content octets of an element, sharing memory. */
export function contentOf(element: DerElement): Buffer {
  return element.buf.subarray(element.contentStart, element.end);
}

/** Decodes an OBJECT IDENTIFIER element to dotted form. */
export function readOid(element: DerElement | undefined, code: X509ErrorCode): string {
  return decodeOid(contentOf(expectTag(element, TAG.OID, code)), code);
}

/** Decodes a UTCTime or GeneralizedTime element (RFC 5280 4.1.2.5 forms, `Z` only). */
export function readTime(element: DerElement | undefined, code: X509ErrorCode): Date {
  if (element === undefined) throw new X509Error(code, 'missing time');
  const text = contentOf(element).toString('latin1');
  let match: RegExpExecArray | null;
  let year: number;
  if (element.tag === TAG.UTC_TIME) {
    match = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
    if (match === null) throw new X509Error(code, 'bad UTCTime');
    const yy = Number(match[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (element.tag === TAG.GENERALIZED_TIME) {
    match = /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
    if (match === null) throw new X509Error(code, 'bad GeneralizedTime');
    year = Number(match[1]);
  } else {
    throw new X509Error(code, 'expected a time');
  }
  const [, , mo, d, h, mi, s] = match.map(Number) as number[];
  const ms = Date.UTC(year, (mo as number) - 1, d, h, mi, s);
  if (Number.isNaN(ms)) throw new X509Error(code, 'time out of range');
  return new Date(ms);
}
