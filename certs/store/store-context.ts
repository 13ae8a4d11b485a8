import type Database from 'better-sqlite3';

import { appendAuditRecord } from './audit-log.js';
import { incrementTrustVersion, readTrustVersion } from './meta-store.js';
import type { Statements } from './statements.js';
import { toStoreError } from './store-error.js';
import type { AuditRecord } from './types.js';

/**
 * What CaStore lends the stores that share its connection (certificates,
 * revocations, join tokens, meta, audit, mesh policies, security events):
 * its transactions, its audit chain and its trust version, so one of their
 * changes commits together with its audit record. Only callable inside
 * `write` where it says so.
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

/**
 * Builds the context over an open connection. Every call wraps driver
 * failures into StoreError naming what it was `doing`. A durable write
 * switches the connection to `synchronous=FULL` for its transaction and
 * back to NORMAL after it; the connection is used by one thread and every
 * call is synchronous, so the switch cannot leak into another transaction.
 */
export function createStoreContext(db: Database.Database, stmts: Statements): StoreContext {
  const syncFull = db.prepare('PRAGMA synchronous = FULL');
  const syncNormal = db.prepare('PRAGMA synchronous = NORMAL');

  function read<T>(doing: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw toStoreError(err, doing);
    }
  }

  function write<T>(doing: string, durable: boolean, fn: () => T): T {
    try {
      if (!durable) return db.transaction(fn).immediate();
      syncFull.run();
      try {
        return db.transaction(fn).immediate();
      } finally {
        syncNormal.run();
      }
    } catch (err) {
      throw toStoreError(err, doing);
    }
  }

  function snapshot<T>(doing: string, fn: () => T): T {
    return read(doing, () => db.transaction(fn).deferred());
  }

  return {
    db,
    write,
    snapshot,
    read,
    audit: (event, data, at) => appendAuditRecord(stmts, event, data, at),
    readTrustVersion: () => readTrustVersion(stmts),
    bumpTrustVersion: () => incrementTrustVersion(stmts),
  };
}
