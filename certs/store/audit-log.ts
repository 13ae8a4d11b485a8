import { auditHash, checkAuditEntry, GENESIS_HASH, verifyAuditChain } from './audit-chain.js';
import { toAuditRecord, type Statements } from './statements.js';
import type { StoreContext } from './store-context.js';
import { checkLimit, dateMs } from './store-input.js';
import type { AuditRecord, AuditVerdict } from './types.js';

/**
 * The append-only, hash-chained audit log: the records callers add of their
 * own, reading them back, and re-checking the chain. The store's own state
 * changes append theirs through StoreContext.audit, in their transaction.
 */
export class AuditLog {
  readonly #ctx: StoreContext;
  readonly #stmts: Statements;

  constructor(ctx: StoreContext, stmts: Statements) {
    this.#ctx = ctx;
    this.#stmts = stmts;
  }

  /** Appends a caller's record in its own transaction (synchronous=NORMAL) and returns it. */
  append(event: string, data: Record<string, unknown>, now?: Date): AuditRecord {
    const at = now ?? new Date();
    dateMs(at, 'now');
    return this.#ctx.write('appending audit', false, () => this.#ctx.audit(event, data, at));
  }

  /** Returns records with seq above `sinceSeq` (default 0), oldest first. */
  records(opts: { sinceSeq?: number; limit?: number } = {}): AuditRecord[] {
    const limit = checkLimit(opts.limit);
    const sinceSeq = opts.sinceSeq ?? 0;
    return this.#ctx.read('reading audit', () => {
      return this.#stmts.auditSince.all(sinceSeq, limit).map(toAuditRecord);
    });
  }

  /** Recomputes the chain from genesis in one snapshot; see verifyAuditChain. */
  verify(): AuditVerdict {
    return this.#ctx.snapshot('verifying audit', () =>
      verifyAuditChain(this.#stmts.auditAll.iterate()),
    );
  }
}

/**
 * Appends one record to the audit chain after the head and returns it; the
 * caller holds the write transaction. Throws STORE_INVALID for a bad event
 * name or secret-shaped data (see checkAuditEntry).
 */
export function appendAuditRecord(
  stmts: Statements,
  event: string,
  data: Record<string, unknown>,
  at: Date,
): AuditRecord {
  checkAuditEntry(event, data);
  const head = stmts.auditHead.get();
  const seq = (head?.seq ?? 0) + 1;
  const prevHash = head?.hash ?? GENESIS_HASH;
  const ts = at.toISOString();
  const stored = JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
  const hash = auditHash(prevHash, { seq, ts, event, data: stored });
  stmts.insertAudit.run(seq, ts, event, JSON.stringify(stored), prevHash, hash);
  return { seq, ts: new Date(ts), event, data: stored, prevHash, hash };
}
