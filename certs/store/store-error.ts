import { PalisadeError } from '../errors.js';

/**
 * Stable codes of the CA store. Callers match on these: `UNKNOWN_SERIAL`,
 * `TOKEN_*` and `IDENTITY_REVOKED` are answers for the client; `STORE_INVALID`
 * is a caller bug; `STORE_CORRUPT` and `STORE_IO` mean the file is unusable.
 */
export type StoreErrorCode =
  | 'UNKNOWN_SERIAL'
  | 'DUPLICATE_SERIAL'
  | 'IDENTITY_REVOKED'
  | 'TOKEN_UNKNOWN'
  | 'TOKEN_USED'
  | 'TOKEN_EXPIRED'
  | 'STORE_INVALID'
  | 'STORE_CORRUPT'
  | 'STORE_IO';

/** Raised by the CA store, with the SQLite error kept as `cause`. */
export class StoreError extends PalisadeError {
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'StoreError';
  }
}

/**
 * Wraps anything a SQLite call threw into a StoreError: corruption codes
 * become `STORE_CORRUPT`, every other driver failure `STORE_IO`. Our own
 * errors pass through untouched.
 */
export function toStoreError(err: unknown, doing: string): StoreError {
  if (err instanceof StoreError) return err;
  const sqliteCode = (err as { code?: unknown } | null)?.code;
  const text = err instanceof Error ? err.message : String(err);
  if (sqliteCode === 'SQLITE_CORRUPT' || sqliteCode === 'SQLITE_NOTADB') {
    return new StoreError('STORE_CORRUPT', `${doing}: database is corrupt: ${text}`, {
      cause: err,
    });
  }
  return new StoreError('STORE_IO', `${doing}: ${text}`, { cause: err });
}
