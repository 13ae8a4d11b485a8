import type Database from 'better-sqlite3';

import { StoreError } from './store-error.js';

/**
 * Schema migrations, in order: migration N brings the file from version N-1
 * to N. Append new ones; never edit one that has shipped, because files in
 * the field already ran it.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: certificates, revocations, join tokens, meta and the audit chain.
  `
  CREATE TABLE certs (
    serial_hex        TEXT PRIMARY KEY,
    spiffe_id         TEXT NOT NULL,
    not_before_ms     INTEGER NOT NULL,
    not_after_ms      INTEGER NOT NULL,
    issued_at_ms      INTEGER NOT NULL,
    issued_via        TEXT NOT NULL
      CHECK (issued_via IN ('sa-token', 'join-token', 'renewal', 'admin', 'bootstrap')),
    issuer_serial_hex TEXT NOT NULL
  ) STRICT;
  CREATE INDEX certs_by_identity ON certs (spiffe_id, not_after_ms);
  CREATE INDEX certs_by_issued ON certs (issued_at_ms);

  CREATE TABLE serial_revocations (
    serial_hex    TEXT PRIMARY KEY REFERENCES certs (serial_hex),
    reason        TEXT NOT NULL,
    revoked_at_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE identity_revocations (
    spiffe_id     TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    revoked_at_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE join_tokens (
    token_sha256  TEXT PRIMARY KEY,
    spiffe_id     TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER
  ) STRICT;

  CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    ts        TEXT NOT NULL,
    event     TEXT NOT NULL,
    data      TEXT NOT NULL CHECK (json_valid(data)),
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
  ) STRICT;

  -- The API has no path that changes or removes audit rows; these triggers
  -- make a stray statement fail loudly too. They stop mistakes, not an
  -- attacker with the file: verifyAudit is what catches that.
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
  `,
  // 2: mesh policy versions and the bounded security-event history.
  `
  CREATE TABLE mesh_policies (
    version         INTEGER PRIMARY KEY,
    document_json   TEXT NOT NULL CHECK (json_valid(document_json)),
    document_sha256 TEXT NOT NULL,
    source          TEXT NOT NULL,
    set_by          TEXT NOT NULL,
    set_at_ms       INTEGER NOT NULL
  ) STRICT;

  -- AUTOINCREMENT: ids only grow, even after pruning, so after_id cursors
  -- held by watchers never see an old id come back.
  CREATE TABLE security_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter_id    TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    peer_id        TEXT NOT NULL,
    direction      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    rule           TEXT NOT NULL,
    detail_json    TEXT NOT NULL CHECK (json_valid(detail_json))
  ) STRICT;
  CREATE INDEX security_events_by_time ON security_events (at_ms);
  CREATE INDEX security_events_by_reporter ON security_events (reporter_id, id);
  CREATE INDEX security_events_by_peer ON security_events (peer_id, id);
  `,
];

/** The schema version this build writes and understands. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings an open database up to SCHEMA_VERSION, each migration in its own
 * transaction together with its version bump. Throws STORE_CORRUPT when the
 * file was written by a newer build, rather than guess at its layout.
 */
export function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT');
  const readVersion = db.prepare<[], { value: string }>(
    "SELECT value FROM meta WHERE key = 'schema_version'",
  );
  const writeVersion = db.prepare<[string]>(
    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) " +
      'ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  );

  const current = Number(readVersion.get()?.value ?? '0');
  if (!Number.isInteger(current) || current < 0) {
    throw new StoreError('STORE_CORRUPT', `schema_version is not a version number: ${current}`);
  }
  if (current > SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_CORRUPT',
      `store schema version ${current} is newer than this build understands (${SCHEMA_VERSION})`,
    );
  }

  for (let version = current + 1; version <= SCHEMA_VERSION; version += 1) {
    const sql = MIGRATIONS[version - 1] as string;
    db.transaction(() => {
      db.exec(sql);
      writeVersion.run(String(version));
    }).immediate();
  }
}
