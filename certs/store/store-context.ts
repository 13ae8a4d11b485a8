import type Database from 'better-sqlite3';

import type { AuditRecord } from './types.js';

/**
 * What CaStore lends the stores that share its connection (mesh policies,
 * security events): its transactions, its audit chain and its trust
 * version, so one of their changes commits together with its audit record.
 * Only callable inside `write` where it says so.
 */
export interface StoreContext {
  readonly db: Database.Database;
  /** Runs `fn` in one BEGIN IMMEDIATE transaction; `durable` fsyncs before returning. */
  write<T>(doing: string, durable: boolean, fn: () => T): T;
  /** Runs `fn` in one read snapshot. */
  snapshot<T>(doing: string, fn: () => T): T;
  /** Runs a read, wrapping driver failures into StoreError. */
  read<T>(doing: string, fn: () => T): T;
  /** Appends an audit record; inside `write` only. */
  audit(event: string, data: Record<string, unknown>, at: Date): AuditRecord;
  /** The current trust version. */
  readTrustVersion(): number;
  /** Bumps the trust version and returns it; inside `write` only. */
  bumpTrustVersion(): number;
}
