import { PalisadeError } from '../errors.js';

/**
 * Codes raised by the X.509 library. Callers and tests match on these, never
 * on the message text.
 */
export type X509ErrorCode =
  | 'CSR_MALFORMED'
  | 'CSR_TOO_LARGE'
  | 'CSR_KEY_UNSUPPORTED'
  | 'CSR_BAD_SIGNATURE'
  | 'KEY_UNSUPPORTED'
  | 'ISSUER_INVALID'
  | 'CERT_MALFORMED';

/** Raised when a key, CSR, certificate or issuer cannot be used; `code` says why. */
export class X509Error extends PalisadeError {
  constructor(code: X509ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'X509Error';
  }
}
