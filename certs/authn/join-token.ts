import { createHash, randomBytes } from 'node:crypto';

/** Prefix that marks a Palisade join token, so scanners and humans can spot one. */
export const JOIN_TOKEN_PREFIX = 'pjt_';

/** Random bytes behind every join token (256 bits, far beyond guessing). */
export const JOIN_TOKEN_RANDOM_BYTES = 32;

const JOIN_TOKEN_SHAPE = /^pjt_[A-Za-z0-9_-]{43}$/;

/** Makes a fresh one-time join token: `pjt_` followed by 32 random bytes in base64url. */
export function generateJoinToken(): string {
  return JOIN_TOKEN_PREFIX + randomBytes(JOIN_TOKEN_RANDOM_BYTES).toString('base64url');
}

/**
 * Returns the lowercase hex SHA-256 of a join token: the only form the CA
 * stores, so a copy of its database cannot be turned back into a usable token.
 */
export function hashJoinToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Returns whether `token` has the exact shape `generateJoinToken` produces. */
export function isJoinTokenShaped(token: string): boolean {
  return typeof token === 'string' && JOIN_TOKEN_SHAPE.test(token);
}
