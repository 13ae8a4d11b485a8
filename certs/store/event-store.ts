import type Database from 'better-sqlite3';

import type { IdentityPattern } from '../policy/index.js';
import type { StoreContext } from './store-context.js';
import { StoreError } from './store-error.js';
import { checkSpiffeId, dateMs } from './store-input.js';

/** Rows the event history keeps by default; older ones are pruned. */
export const DEFAULT_MAX_EVENTS = 100_000;

/** A security event as an agent reported it, already validated by the caller. */
export interface SecurityEventInput {
  kind: string;
  atMs: number;
  /** The other side's SPIFFE ID, or '' when unknown. */
  peerId: string;
  /** 'inbound', 'outbound' or ''. */
  direction: string;
  reason: string;
  rule: string;
  /** A JSON object. */
  detailJson: string;
}

/** A stored security event: the input plus its id, reporter and arrival time. */
export interface StoredSecurityEvent extends SecurityEventInput {
  /** Grows with each event stored, never reused. */
  id: number;
  /** SPIFFE ID of the agent that reported it, from its certificate. */
  reporterId: string;
  receivedAt: Date;
}

/** Which stored events a query wants; the newest `limit` matches come back, oldest first. */
export interface EventQuery {
  /** Only events that happened at or after this time (epoch ms). */
  sinceMs?: number;
  /** Only events stored after this id. */
  afterId?: number;
  /** Only events whose reporter or peer matches. */
  identity?: IdentityPattern;
  limit: number;
}

interface EventRow {
  id: number;
  reporter_id: string;
  received_at_ms: number;
  kind: string;
  at_ms: number;
  peer_id: string;
  direction: string;
  reason: string;
  rule: string;
  detail_json: string;
}

const COLUMNS =
  'id, reporter_id, received_at_ms, kind, at_ms, peer_id, direction, reason, rule, detail_json';

// Every character of a SPIFFE ID sorts below DEL, so `prefix || DEL` bounds
// the index range of the IDs that start with `prefix`.
const ABOVE_SPIFFE_CHARS = '\u007f';

/**
 * The bounded history of security events that agents report, in the CA's
 * SQLite file. Appends commit without fsync (like issuance: a process crash
 * loses nothing). The history keeps at most `maxEvents` rows: past that, the
 * oldest are pruned in batches of `pruneBatch` in the appending transaction,
 * so the table never holds more than `maxEvents`.
 */
export class EventStore {
  readonly maxEvents: number;
  readonly pruneBatch: number;
  readonly #ctx: StoreContext;
  readonly #insert: Database.Statement<
    [string, number, string, number, string, string, string, string, string]
  >;
  readonly #span: Database.Statement<[], { lo: number | null; hi: number | null }>;
  readonly #prune: Database.Statement<[number]>;
  readonly #count: Database.Statement<[], { n: number }>;
  readonly #queries = new Map<boolean, Database.Statement>();

  constructor(ctx: StoreContext, options: { maxEvents?: number; pruneBatch?: number } = {}) {
    this.maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.pruneBatch = options.pruneBatch ?? Math.max(1, Math.floor(this.maxEvents / 100));
    if (!Number.isInteger(this.maxEvents) || this.maxEvents < 1) {
      throw new StoreError('STORE_INVALID', 'maxEvents must be a positive integer');
    }
    if (
      !Number.isInteger(this.pruneBatch) ||
      this.pruneBatch < 1 ||
      this.pruneBatch > this.maxEvents
    ) {
      throw new StoreError('STORE_INVALID', 'pruneBatch must be 1 to maxEvents');
    }
    this.#ctx = ctx;
    this.#insert = ctx.db.prepare(
      'INSERT INTO security_events (reporter_id, received_at_ms, kind, at_ms, peer_id, ' +
        'direction, reason, rule, detail_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#span = ctx.db.prepare('SELECT min(id) AS lo, max(id) AS hi FROM security_events');
    this.#prune = ctx.db.prepare('DELETE FROM security_events WHERE id <= ?');
    this.#count = ctx.db.prepare('SELECT count(*) AS n FROM security_events');
  }

  /**
   * Stores a batch of one reporter's events in one transaction and prunes
   * the oldest past the bound. Returns the stored events (with their ids)
   * and how many old ones were pruned. Throws STORE_INVALID for a reporter
   * that is not a SPIFFE ID or a detail that is not JSON; nothing is stored
   * then.
   */
  append(
    reporterId: string,
    events: readonly SecurityEventInput[],
    receivedAt: Date,
  ): { stored: StoredSecurityEvent[]; pruned: number } {
    checkSpiffeId(reporterId);
    const receivedMs = dateMs(receivedAt, 'receivedAt');
    return this.#ctx.write('storing security events', false, () => {
      const stored = events.map((event) => {
        const { lastInsertRowid } = this.#insert.run(
          reporterId,
          receivedMs,
          event.kind,
          event.atMs,
          event.peerId,
          event.direction,
          event.reason,
          event.rule,
          event.detailJson,
        );
        return {
          ...event,
          id: Number(lastInsertRowid),
          reporterId,
          receivedAt: new Date(receivedMs),
        };
      });
      return { stored, pruned: this.#pruneOldest() };
    });
  }

  /** The newest `limit` events matching `query`, oldest first. */
  list(query: EventQuery): StoredSecurityEvent[] {
    if (!Number.isInteger(query.limit) || query.limit < 1) {
      throw new StoreError('STORE_INVALID', 'limit must be a positive integer');
    }
    const identity = query.identity;
    const params: Record<string, unknown> = {
      afterId: query.afterId ?? 0,
      sinceMs: query.sinceMs ?? 0,
    };
    if (identity) {
      const star = identity.canonical.indexOf('*');
      params.lo = star === -1 ? identity.canonical : identity.canonical.slice(0, star);
      params.hi = `${params.lo as string}${ABOVE_SPIFFE_CHARS}`;
    }
    return this.#ctx.snapshot('listing security events', () => {
      const matches: StoredSecurityEvent[] = [];
      // The index ranges narrow by the pattern's literal prefix; the pattern
      // itself (inner `*` segments) decides.
      for (const row of this.#query(identity !== undefined).iterate(params) as Iterable<EventRow>) {
        if (identity && !identity.matches(row.reporter_id) && !identity.matches(row.peer_id)) {
          continue;
        }
        matches.push(toEvent(row));
        if (matches.length >= query.limit) break;
      }
      return matches.reverse();
    });
  }

  /** How many events are stored. */
  count(): number {
    return this.#ctx.read('counting security events', () => this.#count.get()?.n ?? 0);
  }

  #pruneOldest(): number {
    const { lo, hi } = this.#span.get() ?? { lo: null, hi: null };
    // Ids only grow and only the oldest are deleted, so hi - lo + 1 is the
    // row count (and never below it).
    if (lo === null || hi === null || hi - lo + 1 <= this.maxEvents) return 0;
    const keep = Math.max(1, this.maxEvents - this.pruneBatch);
    return this.#prune.run(hi - keep).changes;
  }

  #query(byIdentity: boolean): Database.Statement {
    let stmt = this.#queries.get(byIdentity);
    if (!stmt) {
      const identity = byIdentity
        ? ' AND ((reporter_id >= @lo AND reporter_id < @hi) OR (peer_id >= @lo AND peer_id < @hi))'
        : '';
      stmt = this.#ctx.db.prepare(
        `SELECT ${COLUMNS} FROM security_events WHERE id > @afterId AND at_ms >= @sinceMs` +
          `${identity} ORDER BY id DESC`,
      );
      this.#queries.set(byIdentity, stmt);
    }
    return stmt;
  }
}

function toEvent(row: EventRow): StoredSecurityEvent {
  return {
    id: row.id,
    reporterId: row.reporter_id,
    receivedAt: new Date(row.received_at_ms),
    kind: row.kind,
    atMs: row.at_ms,
    peerId: row.peer_id,
    direction: row.direction,
    reason: row.reason,
    rule: row.rule,
    detailJson: row.detail_json,
  };
}
