import { normaliseSerialHex } from '../x509/index.js';
import { AuthorityError } from './authority-error.js';

/** Longest join token lifetime an operator may ask for, in seconds (7 days). */
const MAX_JOIN_TOKEN_TTL_SECONDS = 7 * 86400;

/** Lowercase hex without separators or leading zero bytes; REQUEST_INVALID when not hex. */
export function normaliseSerial(serial: string): string {
  try {
    return normaliseSerialHex(serial.replace(/:/g, ''));
  } catch (err) {
    const message = `not a hex serial number: ${JSON.stringify(serial)}`;
    throw new AuthorityError('REQUEST_INVALID', message, { cause: err });
  }
}

/** Checks a join token lifetime is a whole number of seconds in 1s..7d; TTL_INVALID otherwise. */
export function checkJoinTokenTtl(ttlSeconds: number): number {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_JOIN_TOKEN_TTL_SECONDS) {
    throw new AuthorityError(
      'TTL_INVALID',
      `join token lifetime must be 1s..7d, got ${ttlSeconds}s`,
    );
  }
  return ttlSeconds;
}
