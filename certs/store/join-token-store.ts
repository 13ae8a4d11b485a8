import { generateJoinToken, hashJoinToken, isJoinTokenShaped } from '../authn/index.js';
import type { JoinTokenRow, Statements } from './statements.js';
import type { StoreContext } from './store-context.js';
import { StoreError } from './store-error.js';
import { checkSpiffeId, dateMs } from './store-input.js';
import type { JoinTokenRecord } from './types.js';

/**
 * One-time join tokens, stored as their SHA-256 only. Creating and spending
 * one are durable and audited; the token itself is never stored or audited.
 */
export class JoinTokenStore {
  readonly #ctx: StoreContext;
  readonly #stmts: Statements;

  constructor(ctx: StoreContext, stmts: Statements) {
    this.#ctx = ctx;
    this.#stmts = stmts;
  }

  /** Makes a token for `spiffeId` valid for `ttlSeconds`; the token is only in the result. */
  create(
    spiffeId: string,
    ttlSeconds: number,
    now?: Date,
  ): { token: string; record: JoinTokenRecord } {
    checkSpiffeId(spiffeId);
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
      throw new StoreError('STORE_INVALID', 'join token ttlSeconds must be positive');
    }
    const at = now ?? new Date();
    const createdAtMs = dateMs(at, 'now');
    const expiresAtMs = createdAtMs + Math.round(ttlSeconds * 1000);
    const token = generateJoinToken();
    const tokenSha256 = hashJoinToken(token);
    const record: JoinTokenRecord = {
      idHint: tokenSha256.slice(0, 8),
      spiffeId,
      expiresAt: new Date(expiresAtMs),
      createdAt: new Date(createdAtMs),
    };

    this.#ctx.write('creating a join token', true, () => {
      this.#stmts.insertJoinToken.run(tokenSha256, spiffeId, createdAtMs, expiresAtMs);
      this.#ctx.audit(
        'token.created',
        {
          spiffe_id: spiffeId,
          expires_at: record.expiresAt.toISOString(),
          id_hint: record.idHint,
        },
        at,
      );
    });
    return { token, record };
  }

  /** Returns the identity a token entitles without spending it. */
  peek(token: string, now?: Date): string {
    const atMs = dateMs(now ?? new Date(), 'now');
    const tokenSha256 = hashOf(token);
    return this.#ctx.read('reading a join token', () =>
      checkJoinTokenRow(this.#stmts.getJoinToken.get(tokenSha256), atMs),
    );
  }

  /** Spends a token in one durable write transaction and returns its identity. */
  consume(token: string, now?: Date): string {
    const at = now ?? new Date();
    const atMs = dateMs(at, 'now');
    const tokenSha256 = hashOf(token);

    return this.#ctx.write('spending a join token', true, () => {
      const spiffeId = checkJoinTokenRow(this.#stmts.getJoinToken.get(tokenSha256), atMs);
      if (this.#stmts.spendJoinToken.run(atMs, tokenSha256).changes !== 1) {
        throw new StoreError('TOKEN_USED', 'join token was used');
      }
      this.#ctx.audit('token.used', { spiffe_id: spiffeId, id_hint: tokenSha256.slice(0, 8) }, at);
      return spiffeId;
    });
  }
}

function hashOf(token: string): string {
  if (!isJoinTokenShaped(token)) {
    throw new StoreError('TOKEN_UNKNOWN', 'join token is not one this CA issued');
  }
  return hashJoinToken(token);
}

/** Checks a join-token row is usable at `atMs`; returns the identity it entitles. */
function checkJoinTokenRow(row: JoinTokenRow | undefined, atMs: number): string {
  if (!row) throw new StoreError('TOKEN_UNKNOWN', 'join token is not one this CA issued');
  if (row.used_at_ms !== null) throw new StoreError('TOKEN_USED', 'join token was used');
  if (atMs >= row.expires_at_ms) throw new StoreError('TOKEN_EXPIRED', 'join token has expired');
  return row.spiffe_id;
}
