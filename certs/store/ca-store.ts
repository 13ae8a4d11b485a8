import type Database from 'better-sqlite3';

import { AuditLog } from './audit-log.js';
import { CertStore, type CertQuery } from './cert-store.js';
import { EventStore } from './event-store.js';
import { JoinTokenStore } from './join-token-store.js';
import { MetaStore } from './meta-store.js';
import { openDatabase } from './open-database.js';
import { PolicyStore } from './policy-store.js';
import { RevocationStore } from './revocation-store.js';
import { prepareStatements } from './statements.js';
import { createStoreContext } from './store-context.js';
import { toStoreError, type StoreError } from './store-error.js';
import type {
  AuditRecord,
  AuditVerdict,
  CertRecord,
  IdentityRevocation,
  IssuedRecordInput,
  JoinTokenRecord,
  RevocationSet,
  SerialRevocation,
} from './types.js';

/** How a store is opened. */
export interface CaStoreOptions {
  /** Most security events kept (default DEFAULT_MAX_EVENTS); the oldest are pruned. */
  maxEvents?: number;
}

/**
 * The CA's persistent state in one SQLite file: issued certificates,
 * revocations, join tokens, meta values and a hash-chained audit log. Every
 * state change commits in one transaction together with its audit record.
 * This class is the front door; each theme lives in its own module sharing
 * one connection through StoreContext.
 *
 * Durability: the file runs in WAL mode. Issuance and `appendAudit` commit
 * with `synchronous=NORMAL` (no fsync per commit: a process
 * crash loses nothing; a power cut may lose the last few commits, and a
 * certificate whose record is lost can then be revoked only through its
 * identity until it expires, which short lifetimes bound). Revocations,
 * join tokens, trust-version bumps and meta changes switch the connection to
 * `synchronous=FULL` for their transaction, so the WAL is fsynced before the
 * call returns; that fsync also makes every earlier NORMAL commit durable.
 * All calls are synchronous and the connection is used by one thread, so the
 * switch cannot leak into another transaction.
 *
 * Writers take SQLite's write lock up front (BEGIN IMMEDIATE), so a second
 * process on the same file queues behind `busy_timeout` instead of racing.
 */
export class CaStore {
  /** The mesh policy versions, sharing this connection and audit chain. */
  readonly policies: PolicyStore;
  /** The bounded history of security events agents report. */
  readonly events: EventStore;
  readonly #db: Database.Database;
  readonly #certs: CertStore;
  readonly #revocations: RevocationStore;
  readonly #joinTokens: JoinTokenStore;
  readonly #meta: MetaStore;
  readonly #audit: AuditLog;

  private constructor(db: Database.Database, options: CaStoreOptions) {
    this.#db = db;
    const stmts = prepareStatements(db);
    const ctx = createStoreContext(db, stmts);
    this.#certs = new CertStore(ctx, stmts);
    this.#revocations = new RevocationStore(ctx, stmts);
    this.#joinTokens = new JoinTokenStore(ctx, stmts);
    this.#meta = new MetaStore(ctx, stmts);
    this.#audit = new AuditLog(ctx, stmts);
    this.policies = new PolicyStore(ctx);
    this.events = new EventStore(ctx, {
      ...(options.maxEvents !== undefined ? { maxEvents: options.maxEvents } : {}),
    });
  }

  /**
   * Opens or creates the store at `path` with mode 0600, sets WAL,
   * foreign keys and a 5 s busy timeout, and runs pending schema migrations.
   * Throws STORE_IO when the file cannot be opened and STORE_CORRUPT when it
   * is not a readable store.
   */
  static open(path: string, options: CaStoreOptions = {}): CaStore {
    const db = openDatabase(path);
    try {
      return new CaStore(db, options);
    } catch (err) {
      db.close();
      throw toStoreError(err, `opening store ${path}`);
    }
  }

  /** Closes the connection, checkpointing the WAL; the store is unusable afterwards. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /**
   * Records a certificate the CA has just signed, with a `cert.issued` audit
   * record. Throws IDENTITY_REVOKED when the identity is revoked (checked in
   * the same transaction, so a revocation racing with issuance always wins),
   * DUPLICATE_SERIAL for a serial already on file and STORE_INVALID for bad
   * input.
   */
  recordIssued(rec: IssuedRecordInput): void {
    this.#certs.record(rec);
  }

  /**
   * Records several issued certificates in one transaction (one commit for
   * all, which is what makes a busy CA fast), each in its own savepoint: a
   * record that fails (IDENTITY_REVOKED, DUPLICATE_SERIAL, STORE_INVALID) is
   * rolled back alone and reported at its index; the others are kept.
   */
  recordIssuedBatch(recs: readonly IssuedRecordInput[]): (StoreError | undefined)[] {
    return this.#certs.recordBatch(recs);
  }

  /** Returns the record of one certificate, or undefined when the serial is unknown. */
  getCert(serialHex: string): CertRecord | undefined {
    return this.#certs.get(serialHex);
  }

  /**
   * Lists certificates, newest issuance first. By default only unexpired ones
   * (notAfter later than `now`) and at most DEFAULT_LIST_LIMIT rows.
   */
  listCerts(opts: CertQuery = {}): CertRecord[] {
    return this.#certs.list(opts);
  }

  /**
   * Counts certificates: `total` ever recorded, `active` unexpired and not
   * revoked at `now`, `revoked` ever revoked (expired ones included).
   */
  countCerts(now?: Date): { total: number; active: number; revoked: number } {
    return this.#certs.count(now);
  }

  /**
   * Revokes one certificate durably, bumps the trust version and audits
   * `cert.revoked`. Revoking a revoked serial returns the first revocation
   * with `alreadyRevoked: true` and changes nothing. Throws UNKNOWN_SERIAL
   * for a serial the CA never issued.
   */
  revokeSerial(
    serialHex: string,
    reason: string,
    now?: Date,
  ): { revocation: SerialRevocation; alreadyRevoked: boolean } {
    return this.#revocations.revokeSerial(serialHex, reason, now);
  }

  /**
   * Revokes an identity durably: every unexpired, unrevoked certificate of it
   * gets a revocation row, and `recordIssued` refuses it until
   * `unrevokeIdentity`. Returns the serials this call revoked. Repeating it
   * keeps the first revocation and writes nothing unless it finds
   * certificates to revoke.
   */
  revokeIdentity(
    spiffeId: string,
    reason: string,
    now?: Date,
  ): { revocation: IdentityRevocation; serials: string[] } {
    return this.#revocations.revokeIdentity(spiffeId, reason, now);
  }

  /**
   * Lifts an identity revocation durably so the identity can be issued again;
   * certificates revoked with it stay revoked. Returns false, writing
   * nothing, when the identity was not revoked.
   */
  unrevokeIdentity(spiffeId: string, now?: Date): boolean {
    return this.#revocations.unrevokeIdentity(spiffeId, now);
  }

  /** Returns whether the serial has been revoked (expired certificates included). */
  isSerialRevoked(serialHex: string): boolean {
    return this.#revocations.isSerialRevoked(serialHex);
  }

  /** Returns whether the identity is revoked, i.e. blocked from issuance. */
  isIdentityRevoked(spiffeId: string): boolean {
    return this.#revocations.isIdentityRevoked(spiffeId);
  }

  /** Lists revocations in force at `now`: serials of unexpired certificates, and identities. */
  listRevocations(now?: Date): { serials: SerialRevocation[]; identities: IdentityRevocation[] } {
    return this.#revocations.list(now);
  }

  /**
   * Returns what agents must refuse at `now`, read in one snapshot with the
   * trust version. A revoked serial drops out once its certificate expires;
   * that alone does not bump the version, since expiry already rejects it.
   */
  revocationSet(now?: Date): RevocationSet {
    return this.#revocations.revocationSet(now);
  }

  /** Returns the trust version: 0 on a new store, bumped by each revocation or bundle change. */
  trustVersion(): number {
    return this.#meta.trustVersion();
  }

  /**
   * Bumps the trust version durably (for a trust bundle or policy change) and
   * audits `trust.updated` with the reason. Returns the new version.
   */
  bumpTrustVersion(reason: string): number {
    return this.#meta.bumpTrustVersion(reason);
  }

  /**
   * Makes a one-time join token for `spiffeId`, valid for `ttlSeconds`. Only
   * its SHA-256 is stored (durably, with a `token.created` audit record); the
   * token itself exists solely in the return value.
   */
  createJoinToken(
    spiffeId: string,
    ttlSeconds: number,
    now?: Date,
  ): { token: string; record: JoinTokenRecord } {
    return this.#joinTokens.create(spiffeId, ttlSeconds, now);
  }

  /**
   * Returns the identity a join token entitles without spending it, so a
   * request can be checked in full before the token is used up. Throws
   * TOKEN_UNKNOWN, TOKEN_USED or TOKEN_EXPIRED like consumeJoinToken.
   */
  peekJoinToken(token: string, now?: Date): string {
    return this.#joinTokens.peek(token, now);
  }

  /**
   * Spends a join token and returns the SPIFFE ID it was made for. The check
   * and the spend are one durable write transaction holding SQLite's write
   * lock, so a token works exactly once even across processes. Throws
   * TOKEN_UNKNOWN, TOKEN_USED or TOKEN_EXPIRED; a failed attempt writes
   * nothing.
   */
  consumeJoinToken(token: string, now?: Date): string {
    return this.#joinTokens.consume(token, now);
  }

  /** Returns a meta value, or undefined when it was never set. */
  getMeta(key: string): string | undefined {
    return this.#meta.get(key);
  }

  /**
   * Sets a meta value durably with an audit record (`auditEvent`, default
   * `meta.set`) that holds the key and the value's SHA-256, never the value:
   * meta may hold PEM bundles. The store's own keys (`schema_version`,
   * `trust_version`) are refused with STORE_INVALID.
   */
  setMeta(key: string, value: string, auditEvent = 'meta.set'): void {
    this.#meta.set(key, value, auditEvent);
  }

  /**
   * Appends an audit record of the caller's own (e.g. `intermediate.rotated`)
   * and returns it. Commits like issuance (synchronous=NORMAL). Throws
   * STORE_INVALID for a bad event name or secret-shaped data.
   */
  appendAudit(event: string, data: Record<string, unknown>, now?: Date): AuditRecord {
    return this.#audit.append(event, data, now);
  }

  /** Returns audit records with seq above `sinceSeq` (default 0), oldest first. */
  auditRecords(opts: { sinceSeq?: number; limit?: number } = {}): AuditRecord[] {
    return this.#audit.records(opts);
  }

  /**
   * Recomputes the audit chain from genesis and returns the first record
   * whose seq, link or hash is wrong. It proves the rows were not edited or
   * removed from the middle; a cut-off tail is only visible against a head
   * hash kept elsewhere, which is why the verdict returns it.
   */
  verifyAudit(): AuditVerdict {
    return this.#audit.verify();
  }
}
