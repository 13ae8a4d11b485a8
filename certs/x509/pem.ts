import { X509Error, type X509ErrorCode } from './errors.js';

const CERTIFICATE_BLOCK =
  /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]*?-----END CERTIFICATE-----/g;
const SINGLE_BLOCK =
  /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----\s*$/;

/** Encodes DER as a PEM block with 64-character lines and a final newline. */
export function toPem(der: Buffer, label: string): string {
  const base64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Returns the CERTIFICATE blocks of a PEM bundle in order, each normalised to
 * end with one newline. Other block types and text between blocks are skipped.
 */
export function splitPemChain(pem: string): string[] {
  return Array.from(pem.matchAll(CERTIFICATE_BLOCK), (match) => `${match[0]}\n`);
}

/**
 * Decodes a string holding exactly one PEM block whose label is one of
 * `labels`; only whitespace may surround it. Throws X509Error with `code`.
 */
export function fromPem(pem: string, labels: readonly string[], code: X509ErrorCode): Buffer {
  const match = SINGLE_BLOCK.exec(pem);
  if (match === null) throw new X509Error(code, 'input is not a single PEM block');
  if (!labels.includes(match[1] as string)) {
    throw new X509Error(code, `PEM label ${match[1]} is not ${labels.join(' or ')}`);
  }
  const der = Buffer.from((match[2] as string).replace(/\s+/g, ''), 'base64');
  if (der.length === 0) throw new X509Error(code, 'PEM block is empty');
  return der;
}
