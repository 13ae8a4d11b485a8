import type Database from 'better-sqlite3';

import type {
  AuditRecord,
  CertRecord,
  IdentityRevocation,
  IssuedVia,
  SerialRevocation,
} from './types.js';

/** A certs row joined with its revocation flag. */
export interface CertRow {
  serial_hex: string;
  spiffe_id: string;
  not_before_ms: number;
  not_after_ms: number;
  issued_at_ms: number;
  issued_via: IssuedVia;
  issuer_serial_hex: string;
  revoked: number;
}

/** A serial revocation row joined with its certificate. */
export interface SerialRevocationRow {
  serial_hex: string;
  spiffe_id: string;
  reason: string;
  revoked_at_ms: number;
  not_after_ms: number;
}

/** An identity revocation row. */
export interface IdentityRevocationRow {
  spiffe_id: string;
  reason: string;
  revoked_at_ms: number;
}

/** The parts of a join token row that spending it needs. */
export interface JoinTokenRow {
  spiffe_id: string;
  expires_at_ms: number;
  used_at_ms: number | null;
}

/** An audit row as stored. */
export interface AuditRow {
  seq: number;
  ts: string;
  event: string;
  data: string;
  prev_hash: string;
  hash: string;
}

/** The columns of a CertRecord, with `revoked`, over certs LEFT JOIN serial_revocations. */
export const CERT_COLUMNS =
  'c.serial_hex, c.spiffe_id, c.not_before_ms, c.not_after_ms, c.issued_at_ms, c.issued_via, ' +
  'c.issuer_serial_hex, (r.serial_hex IS NOT NULL) AS revoked ' +
  'FROM certs c LEFT JOIN serial_revocations r ON r.serial_hex = c.serial_hex';

const SERIAL_REVOCATION_COLUMNS =
  'r.serial_hex, c.spiffe_id, r.reason, r.revoked_at_ms, c.not_after_ms ' +
  'FROM serial_revocations r JOIN certs c ON c.serial_hex = r.serial_hex';

/** Prepares every fixed statement of the store once, for reuse on each call. */
export function prepareStatements(db: Database.Database) {
  return {
    certExists: db.prepare<[string], { one: number }>(
      'SELECT 1 AS one FROM certs WHERE serial_hex = ?',
    ),
    insertCert: db.prepare<[string, string, number, number, number, string, string]>(
      'INSERT INTO certs (serial_hex, spiffe_id, not_before_ms, not_after_ms, issued_at_ms, ' +
        'issued_via, issuer_serial_hex) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    getCert: db.prepare<[string], CertRow>(`SELECT ${CERT_COLUMNS} WHERE c.serial_hex = ?`),
    countCerts: db.prepare<[number], { total: number; active: number; revoked: number }>(
      'SELECT count(*) AS total, ' +
        'coalesce(sum(r.serial_hex IS NULL AND c.not_after_ms > ?), 0) AS active, ' +
        'coalesce(sum(r.serial_hex IS NOT NULL), 0) AS revoked ' +
        'FROM certs c LEFT JOIN serial_revocations r ON r.serial_hex = c.serial_hex',
    ),
    serialRevocation: db.prepare<[string], SerialRevocationRow>(
      `SELECT ${SERIAL_REVOCATION_COLUMNS} WHERE r.serial_hex = ?`,
    ),
    liveSerialRevocations: db.prepare<[number], SerialRevocationRow>(
      `SELECT ${SERIAL_REVOCATION_COLUMNS} WHERE c.not_after_ms > ? ORDER BY r.serial_hex`,
    ),
    insertSerialRevocation: db.prepare<[string, string, number]>(
      'INSERT INTO serial_revocations (serial_hex, reason, revoked_at_ms) VALUES (?, ?, ?)',
    ),
    unrevokedSerialsOf: db.prepare<[string, number], { serial_hex: string }>(
      'SELECT c.serial_hex FROM certs c WHERE c.spiffe_id = ? AND c.not_after_ms > ? ' +
        'AND NOT EXISTS (SELECT 1 FROM serial_revocations r WHERE r.serial_hex = c.serial_hex) ' +
        'ORDER BY c.serial_hex',
    ),
    identityRevocation: db.prepare<[string], IdentityRevocationRow>(
      'SELECT spiffe_id, reason, revoked_at_ms FROM identity_revocations WHERE spiffe_id = ?',
    ),
    identityRevocations: db.prepare<[], IdentityRevocationRow>(
      'SELECT spiffe_id, reason, revoked_at_ms FROM identity_revocations ORDER BY spiffe_id',
    ),
    insertIdentityRevocation: db.prepare<[string, string, number]>(
      'INSERT INTO identity_revocations (spiffe_id, reason, revoked_at_ms) VALUES (?, ?, ?)',
    ),
    deleteIdentityRevocation: db.prepare<[string]>(
      'DELETE FROM identity_revocations WHERE spiffe_id = ?',
    ),
    insertJoinToken: db.prepare<[string, string, number, number]>(
      'INSERT INTO join_tokens (token_sha256, spiffe_id, created_at_ms, expires_at_ms) ' +
        'VALUES (?, ?, ?, ?)',
    ),
    getJoinToken: db.prepare<[string], JoinTokenRow>(
      'SELECT spiffe_id, expires_at_ms, used_at_ms FROM join_tokens WHERE token_sha256 = ?',
    ),
    spendJoinToken: db.prepare<[number, string]>(
      'UPDATE join_tokens SET used_at_ms = ? WHERE token_sha256 = ? AND used_at_ms IS NULL',
    ),
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ' +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    auditHead: db.prepare<[], { seq: number; hash: string }>(
      'SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1',
    ),
    insertAudit: db.prepare<[number, string, string, string, string, string]>(
      'INSERT INTO audit (seq, ts, event, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    auditSince: db.prepare<[number, number], AuditRow>(
      'SELECT seq, ts, event, data, prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    auditAll: db.prepare<[], AuditRow>(
      'SELECT seq, ts, event, data, prev_hash, hash FROM audit ORDER BY seq',
    ),
  };
}

/** The store's prepared statements, by purpose. */
export type Statements = ReturnType<typeof prepareStatements>;

/** Maps a certs row to its API record. */
export function toCertRecord(row: CertRow): CertRecord {
  return {
    serialHex: row.serial_hex,
    spiffeId: row.spiffe_id,
    notBefore: new Date(row.not_before_ms),
    notAfter: new Date(row.not_after_ms),
    issuedAt: new Date(row.issued_at_ms),
    issuedVia: row.issued_via,
    issuerSerialHex: row.issuer_serial_hex,
    revoked: row.revoked === 1,
  };
}

/** Maps a serial revocation row to its API record. */
export function toSerialRevocation(row: SerialRevocationRow): SerialRevocation {
  return {
    serialHex: row.serial_hex,
    spiffeId: row.spiffe_id,
    reason: row.reason,
    revokedAt: new Date(row.revoked_at_ms),
    notAfter: new Date(row.not_after_ms),
  };
}

/** Maps an identity revocation row to its API record. */
export function toIdentityRevocation(row: IdentityRevocationRow): IdentityRevocation {
  return { spiffeId: row.spiffe_id, reason: row.reason, revokedAt: new Date(row.revoked_at_ms) };
}

/** Maps an audit row to its API record, parsing `data`. */
export function toAuditRecord(row: AuditRow): AuditRecord {
  return {
    seq: row.seq,
    ts: new Date(row.ts),
    event: row.event,
    data: JSON.parse(row.data) as Record<string, unknown>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
