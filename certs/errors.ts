/**
 * The base error of Palisade: every failure that crosses a module boundary
 * carries a stable `code` that callers and tests match on, never the message.
 */
export class PalisadeError extends Error {
  /** Stable machine-readable code, e.g. `CSR_SAN_MISMATCH`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PalisadeError';
    this.code = code;
  }
}

/** Returns the error's stable code, or `INTERNAL` for anything that is not ours. */
export function errorCode(err: unknown): string {
  return err instanceof PalisadeError ? err.code : 'INTERNAL';
}

/** Returns a one-line description of any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
