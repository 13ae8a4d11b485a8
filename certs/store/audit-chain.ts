import { createHash } from 'node:crypto';

import type { AuditRow } from './statements.js';
import { StoreError } from './store-error.js';
import type { AuditVerdict } from './types.js';

/** The `prev_hash` of the first audit record: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

const EVENT_NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

// Values that must never reach the audit table: join tokens, PEM bodies and
// JWTs (a JWT header always starts `{"` so its base64url starts `eyJ`).
const SECRET_SHAPES = [
  /pjt_[A-Za-z0-9_-]{20,}/,
  /-----BEGIN /,
  /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./,
];

/** The fields of an audit record that its hash covers. */
export interface AuditBody {
  seq: number;
  ts: string;
  event: string;
  data: Record<string, unknown>;
}

/**
 * Serialises a JSON value with object keys sorted at every depth and no
 * whitespace, so the same record always hashes the same. Throws STORE_INVALID
 * for values JSON cannot carry faithfully (non-finite numbers, bigints,
 * functions, symbols, undefined in arrays).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw invalid(`non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw invalid(`a ${typeof value} value`);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const parts: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(item)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Computes `sha256(prevHash || canonicalJson({seq, ts, event, data}))` as lowercase hex. */
export function auditHash(prevHash: string, body: AuditBody): string {
  return createHash('sha256')
    .update(prevHash, 'utf8')
    .update(canonicalJson({ seq: body.seq, ts: body.ts, event: body.event, data: body.data }))
    .digest('hex');
}

/**
 * Checks an audit event before it is written: a dotted lowercase name and a
 * plain-object payload with nothing secret-shaped in it. Throws STORE_INVALID;
 * a refused write is a bug in the caller, and the transaction it was part of
 * rolls back with it.
 */
export function checkAuditEntry(event: string, data: Record<string, unknown>): string {
  if (typeof event !== 'string' || !EVENT_NAME.test(event)) {
    throw invalid(`audit event name ${JSON.stringify(event)} is not dotted lowercase`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw invalid('audit data must be a plain object');
  }
  const json = canonicalJson(data);
  for (const shape of SECRET_SHAPES) {
    if (shape.test(json)) {
      throw invalid(`audit data for ${event} holds something shaped like a secret`);
    }
  }
  return json;
}

/**
 * Re-checks audit rows, oldest first, from genesis: returns the first whose
 * seq, link or hash is wrong. It proves the rows were not edited or removed
 * from the middle; a cut-off tail is only visible against a head hash kept
 * elsewhere, which is why the verdict returns it.
 */
export function verifyAuditChain(rows: Iterable<AuditRow>): AuditVerdict {
  let count = 0;
  let prevHash = GENESIS_HASH;
  for (const row of rows) {
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
}

function invalid(what: string): StoreError {
  return new StoreError('STORE_INVALID', `cannot audit ${what}`);
}
