import { X509Error, type X509ErrorCode } from './errors.js';

// OBJECT IDENTIFIER content octets (X.690 8.19): the first two arcs share one
// subidentifier (40 * first + second), every subidentifier is base 128, most
// significant group first, with the high bit set on all but its last octet.
// Arcs past 2^53 (UUID OIDs under 2.25) are handled with BigInt.

/** Largest value a subidentifier may reach before one more 7-bit shift loses precision. */
const SAFE_SHIFT_LIMIT = 2 ** 46;

/**
 * Encodes a dotted OID (`1.2.840.10045.2.1`) as its content octets, without
 * tag or length. Throws X509Error with `code` for anything that is not a
 * valid OID: fewer than two arcs, a first arc above 2, a second arc of 40 or
 * more under 0 or 1, or an arc that is not a decimal number.
 */
export function encodeOid(dotted: string, code: X509ErrorCode): Buffer {
  const arcs = dotted.split('.').map((arc) => {
    if (!/^(0|[1-9]\d*)$/.test(arc)) throw new X509Error(code, `bad OID arc in ${dotted}`);
    return BigInt(arc);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2n || (first < 2n && second > 39n)) {
    throw new X509Error(code, `bad OID ${dotted}`);
  }

  const octets: number[] = [];
  for (const value of [first * 40n + second, ...rest]) pushSubidentifier(octets, value);
  return Buffer.from(octets);
}

/**
 * Decodes OBJECT IDENTIFIER content octets to dotted form. Throws X509Error
 * with `code` when the content is empty, ends inside a subidentifier, or pads
 * a subidentifier with a leading 0x80 octet (not minimal, so not DER).
 */
export function decodeOid(content: Buffer, code: X509ErrorCode): string {
  if (content.length === 0) throw new X509Error(code, 'empty OID');

  const arcs: string[] = [];
  let value = 0;
  let big: bigint | undefined;
  let isStart = true;
  for (const octet of content) {
    if (isStart && octet === 0x80) throw new X509Error(code, 'OID subidentifier not minimal');
    isStart = false;
    const low = octet & 0x7f;
    if (big !== undefined) big = (big << 7n) | BigInt(low);
    else if (value >= SAFE_SHIFT_LIMIT) big = (BigInt(value) << 7n) | BigInt(low);
    else value = value * 128 + low;
    if (octet & 0x80) continue;

    if (arcs.length === 0) arcs.push(...splitFirst(big ?? BigInt(value)));
    else arcs.push(String(big ?? value));
    value = 0;
    big = undefined;
    isStart = true;
  }
  if (!isStart) throw new X509Error(code, 'truncated OID');
  return arcs.join('.');
}

function pushSubidentifier(octets: number[], value: bigint): void {
  const groups = [Number(value & 0x7fn)];
  for (let rest = value >> 7n; rest > 0n; rest >>= 7n) groups.push(Number(rest & 0x7fn) | 0x80);
  for (let i = groups.length - 1; i >= 0; i--) octets.push(groups[i] as number);
}

/** The first subidentifier holds two arcs: 0 and 1 take 40 values each, 2 the rest. */
function splitFirst(value: bigint): [string, string] {
  if (value < 40n) return ['0', String(value)];
  if (value < 80n) return ['1', String(value - 40n)];
  return ['2', String(value - 80n)];
}
