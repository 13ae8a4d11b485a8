import type Database from 'better-sqlite3';

import { CERT_COLUMNS, toCertRecord, type CertRow, type Statements } from './statements.js';
import type { StoreContext } from './store-context.js';
import { StoreError, toStoreError } from './store-error.js';
import {
  checkIssuedVia,
  checkLimit,
  checkSpiffeId,
  dateMs,
  normalizeSerial,
} from './store-input.js';
import type { CertRecord, IssuedRecordInput } from './types.js';

/** Which certificates `CertStore.list` returns. */
export interface CertQuery {
  spiffeId?: string;
  revokedOnly?: boolean;
  includeExpired?: boolean;
  now?: Date;
  limit?: number;
}

/**
 * The certificates the CA issued, as records (never a body or key). Issuance
 * commits without fsync and checks the identity revocation in the same
 * transaction, so a revocation racing with issuance always wins.
 */
export class CertStore {
  readonly #ctx: StoreContext;
  readonly #stmts: Statements;
  readonly #listStatements = new Map<string, Database.Statement>();

  constructor(ctx: StoreContext, stmts: Statements) {
    this.#ctx = ctx;
    this.#stmts = stmts;
  }

  /** Records one issued certificate with its `cert.issued` audit record. */
  record(rec: IssuedRecordInput): void {
    this.#ctx.write('recording an issued certificate', false, () => this.#insert(rec));
  }

  /** Records several in one transaction, each in its own savepoint; returns each one's error. */
  recordBatch(recs: readonly IssuedRecordInput[]): (StoreError | undefined)[] {
    const one = this.#ctx.db.transaction((rec: IssuedRecordInput) => this.#insert(rec));
    return this.#ctx.write('recording issued certificates', false, () =>
      recs.map((rec) => {
        try {
          one(rec);
          return undefined;
        } catch (err) {
          return toStoreError(err, 'recording an issued certificate');
        }
      }),
    );
  }

  /** Returns the record of one certificate, or undefined when the serial is unknown. */
  get(serialHex: string): CertRecord | undefined {
    const serial = normalizeSerial(serialHex);
    const row = this.#ctx.read('reading a certificate', () => this.#stmts.getCert.get(serial));
    return row ? toCertRecord(row) : undefined;
  }

  /** Lists certificates matching `query`, newest issuance first. */
  list(query: CertQuery): CertRecord[] {
    const limit = checkLimit(query.limit);
    const nowMs = dateMs(query.now ?? new Date(), 'now');
    const filters: string[] = [];
    if (query.spiffeId !== undefined) filters.push('c.spiffe_id = @spiffeId');
    if (query.revokedOnly) filters.push('r.serial_hex IS NOT NULL');
    if (!query.includeExpired) filters.push('c.not_after_ms > @nowMs');
    const where = filters.length > 0 ? `WHERE ${filters.join(' AND ')}` : '';

    return this.#ctx.read('listing certificates', () => {
      let stmt = this.#listStatements.get(where);
      if (!stmt) {
        stmt = this.#ctx.db.prepare(
          `SELECT ${CERT_COLUMNS} ${where} ` +
            'ORDER BY c.issued_at_ms DESC, c.serial_hex LIMIT @limit',
        );
        this.#listStatements.set(where, stmt);
      }
      const params: Record<string, unknown> = { limit };
      if (query.spiffeId !== undefined) params.spiffeId = query.spiffeId;
      if (!query.includeExpired) params.nowMs = nowMs;
      return (stmt.all(params) as CertRow[]).map(toCertRecord);
    });
  }

  /** Counts certificates ever recorded, active at `now`, and ever revoked. */
  count(now?: Date): { total: number; active: number; revoked: number } {
    const nowMs = dateMs(now ?? new Date(), 'now');
    const row = this.#ctx.read('counting certificates', () => this.#stmts.countCerts.get(nowMs));
    return { total: row?.total ?? 0, active: row?.active ?? 0, revoked: row?.revoked ?? 0 };
  }

  #insert(rec: IssuedRecordInput): void {
    const serial = normalizeSerial(rec.serialHex);
    const spiffeId = checkSpiffeId(rec.spiffeId);
    const issuer = normalizeSerial(rec.issuerSerialHex, 'issuer serial');
    const via = checkIssuedVia(rec.issuedVia);
    const notBeforeMs = dateMs(rec.notBefore, 'notBefore');
    const notAfterMs = dateMs(rec.notAfter, 'notAfter');
    const now = rec.now ?? new Date();
    const nowMs = dateMs(now, 'now');
    if (notAfterMs <= notBeforeMs) {
      throw new StoreError('STORE_INVALID', 'notAfter must be later than notBefore');
    }
    if (this.#stmts.identityRevocation.get(spiffeId)) {
      throw new StoreError('IDENTITY_REVOKED', `identity ${spiffeId} is revoked`);
    }
    if (this.#stmts.certExists.get(serial)) {
      throw new StoreError('DUPLICATE_SERIAL', `serial ${serial} is already recorded`);
    }
    this.#stmts.insertCert.run(serial, spiffeId, notBeforeMs, notAfterMs, nowMs, via, issuer);
    this.#ctx.audit(
      'cert.issued',
      { serial, spiffe_id: spiffeId, not_after: rec.notAfter.toISOString(), via },
      now,
    );
  }
}
