import { createHash } from 'node:crypto';
import fs from 'node:fs';

import Database from 'better-sqlite3';

import { generateJoinToken, hashJoinToken, isJoinTokenShaped } from '../authn/index.js';
import { auditHash, checkAuditEntry, GENESIS_HASH } from './audit-chain.js';
import { EventStore } from './event-store.js';
import { PolicyStore } from './policy-store.js';
import { migrate } from './schema.js';
import { StoreError, toStoreError } from './store-error.js';
import {
  CERT_COLUMNS,
  prepareStatements,
  toAuditRecord,
  toCertRecord,
  toIdentityRevocation,
  toSerialRevocation,
  type CertRow,
  type Statements,
} from './statements.js';
import {
  checkIssuedVia,
  checkLimit,
  checkSpiffeId,
  checkText,
  dateMs,
  normalizeSerial,
} from './store-input.js';
import type { StoreContext } from './store-context.js';
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

/** How long a writer waits for another connection's lock before failing, in ms. */
export const BUSY_TIMEOUT_MS = 5000;

const FILE_MODE = 0o600;
const TRUST_VERSION_KEY = 'trust_version';
const RESERVED_META_KEYS = new Set(['schema_version', TRUST_VERSION_KEY]);

/**
 * The CA's persistent state in one SQLite file: issued certificates,
 * revocations, join tokens, meta values and a hash-chained audit log. Every
 * state change commits in one transaction together with its audit record.
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
  readonly #stmts: Statements;
  readonly #listStatements = new Map<string, Database.Statement>();
  readonly #syncFull: Database.Statement;
  readonly #syncNormal: Database.Statement;

  private constructor(db: Database.Database, options: CaStoreOptions) {
    this.#db = db;
    this.#stmts = prepareStatements(db);
    this.#syncFull = db.prepare('PRAGMA synchronous = FULL');
    this.#syncNormal = db.prepare('PRAGMA synchronous = NORMAL');
    const ctx: StoreContext = {
      db,
      write: (doing, durable, fn) => this.#write(doing, durable, fn),
      snapshot: (doing, fn) => this.#snapshot(doing, fn),
      read: (doing, fn) => this.#read(doing, fn),
      audit: (event, data, at) => this.#audit(event, data, at),
      readTrustVersion: () => this.#readTrustVersion(),
      bumpTrustVersion: () => this.#bumpTrustVersion(),
    };
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
    if (typeof path !== 'string' || path === '') {
      throw new StoreError('STORE_INVALID', 'store path is empty');
    }
    let db: Database.Database | undefined;
    try {
      // Create the file ourselves so it never exists with a wider mode, then
      // tighten an existing one: the store names every workload and token.
      fs.closeSync(fs.openSync(path, fs.constants.O_CREAT | fs.constants.O_RDWR, FILE_MODE));
      fs.chmodSync(path, FILE_MODE);

      db = new Database(path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') {
        throw new StoreError('STORE_IO', `store could not switch to WAL mode (got ${mode})`);
      }
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('synchronous = FULL');
      migrate(db);
      db.pragma('synchronous = NORMAL');

      // SQLite gives -wal and -shm the database file's mode; make sure anyway.
      for (const suffix of ['-wal', '-shm']) {
        if (fs.existsSync(path + suffix)) fs.chmodSync(path + suffix, FILE_MODE);
      }
      return new CaStore(db, options);
    } catch (err) {
      db?.close();
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
    this.#write('recording an issued certificate', false, () => this.#insertIssued(rec));
  }

  /**
   * Records several issued certificates in one transaction (one commit for
   * all, which is what makes a busy CA fast), each in its own savepoint: a
   * record that fails (IDENTITY_REVOKED, DUPLICATE_SERIAL, STORE_INVALID) is
   * rolled back alone and reported at its index; the others are kept.
   */
  recordIssuedBatch(recs: readonly IssuedRecordInput[]): (StoreError | undefined)[] {
    const one = this.#db.transaction((rec: IssuedRecordInput) => this.#insertIssued(rec));
    return this.#write('recording issued certificates', false, () =>
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

  #insertIssued(rec: IssuedRecordInput): void {
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
    this.#audit(
      'cert.issued',
      { serial, spiffe_id: spiffeId, not_after: rec.notAfter.toISOString(), via },
      now,
    );
  }

  /** Returns the record of one certificate, or undefined when the serial is unknown. */
  getCert(serialHex: string): CertRecord | undefined {
    const serial = normalizeSerial(serialHex);
    const row = this.#read('reading a certificate', () => this.#stmts.getCert.get(serial));
    return row ? toCertRecord(row) : undefined;
  }

  /**
   * Lists certificates, newest issuance first. By default only unexpired ones
   * (notAfter later than `now`) and at most DEFAULT_LIST_LIMIT rows.
   */
  listCerts(
    opts: {
      spiffeId?: string;
      revokedOnly?: boolean;
      includeExpired?: boolean;
      now?: Date;
      limit?: number;
    } = {},
  ): CertRecord[] {
    const limit = checkLimit(opts.limit);
    const nowMs = dateMs(opts.now ?? new Date(), 'now');
    const filters: string[] = [];
    if (opts.spiffeId !== undefined) filters.push('c.spiffe_id = @spiffeId');
    if (opts.revokedOnly) filters.push('r.serial_hex IS NOT NULL');
    if (!opts.includeExpired) filters.push('c.not_after_ms > @nowMs');
    const where = filters.length > 0 ? `WHERE ${filters.join(' AND ')}` : '';

    return this.#read('listing certificates', () => {
      let stmt = this.#listStatements.get(where);
      if (!stmt) {
        stmt = this.#db.prepare(
          `SELECT ${CERT_COLUMNS} ${where} ` +
            'ORDER BY c.issued_at_ms DESC, c.serial_hex LIMIT @limit',
        );
        this.#listStatements.set(where, stmt);
      }
      const params: Record<string, unknown> = { limit };
      if (opts.spiffeId !== undefined) params.spiffeId = opts.spiffeId;
      if (!opts.includeExpired) params.nowMs = nowMs;
      return (stmt.all(params) as CertRow[]).map(toCertRecord);
    });
  }

  /**
   * Counts certificates: `total` ever recorded, `active` unexpired and not
   * revoked at `now`, `revoked` ever revoked (expired ones included).
   */
  countCerts(now?: Date): { total: number; active: number; revoked: number } {
    const nowMs = dateMs(now ?? new Date(), 'now');
    const row = this.#read('counting certificates', () => this.#stmts.countCerts.get(nowMs));
    return { total: row?.total ?? 0, active: row?.active ?? 0, revoked: row?.revoked ?? 0 };
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
    const serial = normalizeSerial(serialHex);
    checkText(reason, 'revocation reason');
    const at = now ?? new Date();
    const atMs = dateMs(at, 'now');

    return this.#write('revoking a serial', true, () => {
      const existing = this.#stmts.serialRevocation.get(serial);
      if (existing) return { revocation: toSerialRevocation(existing), alreadyRevoked: true };
      const cert = this.#stmts.getCert.get(serial);
      if (!cert) throw new StoreError('UNKNOWN_SERIAL', `no certificate with serial ${serial}`);

      this.#stmts.insertSerialRevocation.run(serial, reason, atMs);
      const version = this.#bumpTrustVersion();
      this.#audit(
        'cert.revoked',
        { serial, spiffe_id: cert.spiffe_id, reason, trust_version: version },
        at,
      );
      const revocation: SerialRevocation = {
        serialHex: serial,
        spiffeId: cert.spiffe_id,
        reason,
        revokedAt: new Date(atMs),
        notAfter: new Date(cert.not_after_ms),
      };
      return { revocation, alreadyRevoked: false };
    });
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
    checkSpiffeId(spiffeId);
    checkText(reason, 'revocation reason');
    const at = now ?? new Date();
    const atMs = dateMs(at, 'now');

    return this.#write('revoking an identity', true, () => {
      const existing = this.#stmts.identityRevocation.get(spiffeId);
      const serials = this.#stmts.unrevokedSerialsOf
        .all(spiffeId, atMs)
        .map((row) => row.serial_hex);
      if (existing && serials.length === 0) {
        return { revocation: toIdentityRevocation(existing), serials };
      }

      if (!existing) this.#stmts.insertIdentityRevocation.run(spiffeId, reason, atMs);
      for (const serial of serials) this.#stmts.insertSerialRevocation.run(serial, reason, atMs);
      const version = this.#bumpTrustVersion();
      this.#audit(
        'identity.revoked',
        { spiffe_id: spiffeId, reason, serials, trust_version: version },
        at,
      );
      const revocation = existing
        ? toIdentityRevocation(existing)
        : { spiffeId, reason, revokedAt: new Date(atMs) };
      return { revocation, serials };
    });
  }

  /**
   * Lifts an identity revocation durably so the identity can be issued again;
   * certificates revoked with it stay revoked. Returns false, writing
   * nothing, when the identity was not revoked.
   */
  unrevokeIdentity(spiffeId: string, now?: Date): boolean {
    checkSpiffeId(spiffeId);
    const at = now ?? new Date();
    dateMs(at, 'now');

    return this.#write('lifting an identity revocation', true, () => {
      if (this.#stmts.deleteIdentityRevocation.run(spiffeId).changes === 0) return false;
      const version = this.#bumpTrustVersion();
      this.#audit('identity.unrevoked', { spiffe_id: spiffeId, trust_version: version }, at);
      return true;
    });
  }

  /** Returns whether the serial has been revoked (expired certificates included). */
  isSerialRevoked(serialHex: string): boolean {
    const serial = normalizeSerial(serialHex);
    return this.#read('checking a serial', () => !!this.#stmts.serialRevocation.get(serial));
  }

  /** Returns whether the identity is revoked, i.e. blocked from issuance. */
  isIdentityRevoked(spiffeId: string): boolean {
    return this.#read('checking an identity', () => {
      return !!this.#stmts.identityRevocation.get(spiffeId);
    });
  }

  /** Lists revocations in force at `now`: serials of unexpired certificates, and identities. */
  listRevocations(now?: Date): { serials: SerialRevocation[]; identities: IdentityRevocation[] } {
    const nowMs = dateMs(now ?? new Date(), 'now');
    return this.#snapshot('listing revocations', () => ({
      serials: this.#stmts.liveSerialRevocations.all(nowMs).map(toSerialRevocation),
      identities: this.#stmts.identityRevocations.all().map(toIdentityRevocation),
    }));
  }

  /**
   * Returns what agents must refuse at `now`, read in one snapshot with the
   * trust version. A revoked serial drops out once its certificate expires;
   * that alone does not bump the version, since expiry already rejects it.
   */
  revocationSet(now?: Date): RevocationSet {
    const nowMs = dateMs(now ?? new Date(), 'now');
    return this.#snapshot('reading the revocation set', () => ({
      version: this.#readTrustVersion(),
      serials: this.#stmts.liveSerialRevocations.all(nowMs).map((row) => row.serial_hex),
      identities: this.#stmts.identityRevocations.all().map((row) => row.spiffe_id),
    }));
  }

  /** Returns the trust version: 0 on a new store, bumped by each revocation or bundle change. */
  trustVersion(): number {
    return this.#read('reading the trust version', () => this.#readTrustVersion());
  }

  /**
   * Bumps the trust version durably (for a trust bundle or policy change) and
   * audits `trust.updated` with the reason. Returns the new version.
   */
  bumpTrustVersion(reason: string): number {
    checkText(reason, 'trust update reason');
    return this.#write('bumping the trust version', true, () => {
      const version = this.#bumpTrustVersion();
      this.#audit('trust.updated', { reason, trust_version: version }, new Date());
      return version;
    });
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

    this.#write('creating a join token', true, () => {
      this.#stmts.insertJoinToken.run(tokenSha256, spiffeId, createdAtMs, expiresAtMs);
      this.#audit(
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

  /**
   * Returns the identity a join token entitles without spending it, so a
   * request can be checked in full before the token is used up. Throws
   * TOKEN_UNKNOWN, TOKEN_USED or TOKEN_EXPIRED like consumeJoinToken.
   */
  peekJoinToken(token: string, now?: Date): string {
    const atMs = dateMs(now ?? new Date(), 'now');
    const tokenSha256 = this.#joinTokenHash(token);
    return this.#read('reading a join token', () =>
      checkJoinTokenRow(this.#stmts.getJoinToken.get(tokenSha256), atMs),
    );
  }

  /**
   * Spends a join token and returns the SPIFFE ID it was made for. The check
   * and the spend are one durable write transaction holding SQLite's write
   * lock, so a token works exactly once even across processes. Throws
   * TOKEN_UNKNOWN, TOKEN_USED or TOKEN_EXPIRED; a failed attempt writes
   * nothing.
   */
  consumeJoinToken(token: string, now?: Date): string {
    const at = now ?? new Date();
    const atMs = dateMs(at, 'now');
    const tokenSha256 = this.#joinTokenHash(token);

    return this.#write('spending a join token', true, () => {
      const spiffeId = checkJoinTokenRow(this.#stmts.getJoinToken.get(tokenSha256), atMs);
      if (this.#stmts.spendJoinToken.run(atMs, tokenSha256).changes !== 1) {
        throw new StoreError('TOKEN_USED', 'join token was used');
      }
      this.#audit('token.used', { spiffe_id: spiffeId, id_hint: tokenSha256.slice(0, 8) }, at);
      return spiffeId;
    });
  }

  #joinTokenHash(token: string): string {
    if (!isJoinTokenShaped(token)) {
      throw new StoreError('TOKEN_UNKNOWN', 'join token is not one this CA issued');
    }
    return hashJoinToken(token);
  }

  /** Returns a meta value, or undefined when it was never set. */
  getMeta(key: string): string | undefined {
    checkText(key, 'meta key');
    return this.#read('reading meta', () => this.#stmts.getMeta.get(key)?.value);
  }

  /**
   * Sets a meta value durably with an audit record (`auditEvent`, default
   * `meta.set`) that holds the key and the value's SHA-256, never the value:
   * meta may hold PEM bundles. The store's own keys (`schema_version`,
   * `trust_version`) are refused with STORE_INVALID.
   */
  setMeta(key: string, value: string, auditEvent = 'meta.set'): void {
    checkText(key, 'meta key');
    if (RESERVED_META_KEYS.has(key)) {
      throw new StoreError('STORE_INVALID', `meta key ${key} belongs to the store`);
    }
    if (typeof value !== 'string') throw new StoreError('STORE_INVALID', 'meta value not text');
    const valueSha256 = createHash('sha256').update(value, 'utf8').digest('hex');

    this.#write('setting meta', true, () => {
      this.#stmts.setMeta.run(key, value);
      this.#audit(
        auditEvent,
        { key, value_sha256: valueSha256, value_bytes: Buffer.byteLength(value) },
        new Date(),
      );
    });
  }

  /**
   * Appends an audit record of the caller's own (e.g. `intermediate.rotated`)
   * and returns it. Commits like issuance (synchronous=NORMAL). Throws
   * STORE_INVALID for a bad event name or secret-shaped data.
   */
  appendAudit(event: string, data: Record<string, unknown>, now?: Date): AuditRecord {
    const at = now ?? new Date();
    dateMs(at, 'now');
    return this.#write('appending audit', false, () => this.#audit(event, data, at));
  }

  /** Returns audit records with seq above `sinceSeq` (default 0), oldest first. */
  auditRecords(opts: { sinceSeq?: number; limit?: number } = {}): AuditRecord[] {
    const limit = checkLimit(opts.limit);
    const sinceSeq = opts.sinceSeq ?? 0;
    return this.#read('reading audit', () => {
      return this.#stmts.auditSince.all(sinceSeq, limit).map(toAuditRecord);
    });
  }

  /**
   * Recomputes the audit chain from genesis and returns the first record
   * whose seq, link or hash is wrong. It proves the rows were not edited or
   * removed from the middle; a cut-off tail is only visible against a head
   * hash kept elsewhere, which is why the verdict returns it.
   */
  verifyAudit(): AuditVerdict {
    return this.#snapshot('verifying audit', () => {
      let count = 0;
      let prevHash = GENESIS_HASH;
      for (const row of this.#stmts.auditAll.iterate()) {
        const broken = (reason: string): AuditVerdict => ({
          ok: false,
          count,
          brokenSeq: row.seq,
          reason,
        });
        if (row.seq !== count + 1) return broken(`expected seq ${count + 1}, found ${row.seq}`);
        if (row.prev_hash !== prevHash) return broken('prev_hash does not match the record before');
        let data: Record<string, unknown>;
        try {
          data = JSON.parse(row.data) as Record<string, unknown>;
        } catch {
          // Unparseable data is itself the verdict.
          return broken('data is not JSON');
        }
        const body = { seq: row.seq, ts: row.ts, event: row.event, data };
        if (auditHash(prevHash, body) !== row.hash) return broken('hash does not match contents');
        prevHash = row.hash;
        count += 1;
      }
      return { ok: true, count, headHash: prevHash };
    });
  }

  #audit(event: string, data: Record<string, unknown>, at: Date): AuditRecord {
    checkAuditEntry(event, data);
    const head = this.#stmts.auditHead.get();
    const seq = (head?.seq ?? 0) + 1;
    const prevHash = head?.hash ?? GENESIS_HASH;
    const ts = at.toISOString();
    const stored = JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
    const hash = auditHash(prevHash, { seq, ts, event, data: stored });
    this.#stmts.insertAudit.run(seq, ts, event, JSON.stringify(stored), prevHash, hash);
    return { seq, ts: new Date(ts), event, data: stored, prevHash, hash };
  }

  #readTrustVersion(): number {
    return Number(this.#stmts.getMeta.get(TRUST_VERSION_KEY)?.value ?? '0');
  }

  #bumpTrustVersion(): number {
    const version = this.#readTrustVersion() + 1;
    this.#stmts.setMeta.run(TRUST_VERSION_KEY, String(version));
    return version;
  }

  #write<T>(doing: string, durable: boolean, fn: () => T): T {
    try {
      if (!durable) return this.#db.transaction(fn).immediate();
      this.#syncFull.run();
      try {
        return this.#db.transaction(fn).immediate();
      } finally {
        this.#syncNormal.run();
      }
    } catch (err) {
      throw toStoreError(err, doing);
    }
  }

  #snapshot<T>(doing: string, fn: () => T): T {
    return this.#read(doing, () => this.#db.transaction(fn).deferred());
  }

  #read<T>(doing: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw toStoreError(err, doing);
    }
  }
}

/** Checks a join-token row is usable at `atMs`; returns the identity it entitles. */
function checkJoinTokenRow(
  row: { spiffe_id: string; used_at_ms: number | null; expires_at_ms: number } | undefined,
  atMs: number,
): string {
  if (!row) throw new StoreError('TOKEN_UNKNOWN', 'join token is not one this CA issued');
  if (row.used_at_ms !== null) throw new StoreError('TOKEN_USED', 'join token was used');
  if (atMs >= row.expires_at_ms) throw new StoreError('TOKEN_EXPIRED', 'join token has expired');
  return row.spiffe_id;
}
