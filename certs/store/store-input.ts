import { isSpiffeId } from '../spiffe-id.js';
import { StoreError } from './store-error.js';
import { ISSUED_VIA, type IssuedVia } from './types.js';

/** Rows `listCerts` and `auditRecords` return when the caller sets no limit. */
export const DEFAULT_LIST_LIMIT = 1000;

/** Longest revocation reason or meta key the store accepts, in characters. */
export const MAX_TEXT_LENGTH = 1024;

const SERIAL_HEX = /^[0-9a-f]{1,64}$/;

/** Lowercases a serial and checks it is 1 to 64 hex digits; throws STORE_INVALID otherwise. */
export function normalizeSerial(serialHex: string, what = 'serial'): string {
  const serial = typeof serialHex === 'string' ? serialHex.toLowerCase() : '';
  if (!SERIAL_HEX.test(serial)) {
    throw new StoreError('STORE_INVALID', `${what} is not 1 to 64 hex digits`);
  }
  return serial;
}

/** Checks a SPIFFE ID before it is stored; throws STORE_INVALID otherwise. */
export function checkSpiffeId(spiffeId: string): string {
  if (typeof spiffeId !== 'string' || !isSpiffeId(spiffeId)) {
    throw new StoreError('STORE_INVALID', `not a SPIFFE ID: ${JSON.stringify(spiffeId)}`);
  }
  return spiffeId;
}

/** Checks a non-empty, bounded piece of operator text (reasons, meta keys). */
export function checkText(text: string, what: string): string {
  if (typeof text !== 'string' || text.trim() === '' || text.length > MAX_TEXT_LENGTH) {
    throw new StoreError('STORE_INVALID', `${what} must be 1 to ${MAX_TEXT_LENGTH} characters`);
  }
  return text;
}

/** Returns the epoch milliseconds of a valid Date; throws STORE_INVALID otherwise. */
export function dateMs(date: Date, what: string): number {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new StoreError('STORE_INVALID', `${what} is not a valid date`);
  return ms;
}

/** Checks the issuance route is one the schema knows. */
export function checkIssuedVia(via: IssuedVia): IssuedVia {
  if (!ISSUED_VIA.includes(via)) {
    throw new StoreError('STORE_INVALID', `unknown issuance route ${JSON.stringify(via)}`);
  }
  return via;
}

/** Returns the row limit to use: DEFAULT_LIST_LIMIT, or a positive integer the caller gave. */
export function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit <= 0) {
    throw new StoreError('STORE_INVALID', 'limit must be a positive integer');
  }
  return limit;
}
