import type { Logger } from '../log.js';
import type { CaMetrics } from '../metrics.js';
import { compilePattern } from '../policy/index.js';
import type { EventQuery, EventStore, StoredSecurityEvent } from '../store/index.js';
import { EventError } from './event-error.js';
import { checkEventBatch, MAX_EVENTS_PER_BATCH, type SecurityEventWire } from './event-input.js';
import { ReporterRateLimiter } from './rate-limiter.js';

/** Events a list or watch returns when the request sets no limit. */
export const DEFAULT_EVENT_LIMIT = 100;

/** Most stored events one list or watch returns. */
export const MAX_EVENT_LIMIT = 10_000;

/** A ListEvents/WatchEvents request as proto-loader delivers it. */
export interface EventRequest {
  sinceUnixMs: number;
  identityPattern: string;
  limit: number;
  afterId: number;
}

/** Receives each new stored event that matches a watch. */
export type EventListener = (event: StoredSecurityEvent) => void;

interface Watch {
  query: EventQuery;
  onEvent: EventListener;
}

/**
 * The mesh-wide security-event feed: takes batches that agents report
 * (validated, rate-limited per reporter, stored whole or not at all),
 * answers queries over the stored history, and hands each new event to the
 * watches that match it. Owns no sockets; the gRPC services call it.
 */
export class EventFeed {
  private readonly store: EventStore;
  private readonly log: Logger;
  private readonly metrics: CaMetrics;
  private readonly trustDomain: string;
  private readonly limiter: ReporterRateLimiter;
  private readonly now: () => Date;
  private readonly watches = new Set<Watch>();

  constructor(deps: {
    store: EventStore;
    log: Logger;
    metrics: CaMetrics;
    trustDomain: string;
    limiter?: ReporterRateLimiter;
    now?: () => Date;
  }) {
    this.store = deps.store;
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.trustDomain = deps.trustDomain;
    this.limiter = deps.limiter ?? new ReporterRateLimiter();
    this.now = deps.now ?? (() => new Date());
    if (this.limiter.burst < MAX_EVENTS_PER_BATCH) {
      throw new RangeError(`event burst must be at least one full batch (${MAX_EVENTS_PER_BATCH})`);
    }
  }

  /** How many watches are open. */
  get watchCount(): number {
    return this.watches.size;
  }

  /**
   * Stores a batch reported by `reporterId` (the SPIFFE ID of its verified
   * certificate) and passes each event to the matching watches. Throws
   * EVENTS_INVALID or EVENTS_RATE_LIMITED with nothing stored. Returns how
   * many events were stored.
   */
  report(reporterId: string, events: readonly SecurityEventWire[]): number {
    const now = this.now();
    this.metrics.eventsReceived.inc(events.length);
    let checked;
    try {
      checked = checkEventBatch(events, now.getTime());
    } catch (err) {
      this.metrics.eventsRefused.inc({ reason: 'invalid' }, events.length);
      throw err;
    }
    if (checked.length === 0) return 0;
    if (!this.limiter.take(reporterId, checked.length)) {
      this.metrics.eventsRefused.inc({ reason: 'rate_limited' }, checked.length);
      throw new EventError(
        'EVENTS_RATE_LIMITED',
        `${reporterId} reports more than ${this.limiter.perSecond} events/s ` +
          `(bursts up to ${this.limiter.burst}); retry later`,
      );
    }

    const { stored, pruned } = this.store.append(reporterId, checked, now);
    this.metrics.eventsStored.inc(stored.length);
    this.log.debug(
      { reporter_id: reporterId, events: stored.length, pruned, watchers: this.watches.size },
      'events stored',
    );
    for (const watch of this.watches) {
      for (const event of stored) if (matchesQuery(watch.query, event)) watch.onEvent(event);
    }
    return stored.length;
  }

  /** The newest stored events matching the request, oldest first. */
  list(request: Partial<EventRequest>): StoredSecurityEvent[] {
    return this.store.list(this.compile(request));
  }

  /**
   * Opens a watch: returns the stored events matching the request (as
   * `list`) and then calls `onEvent` for each matching event stored later,
   * until `stop`. Both happen in one synchronous step, so no event falls
   * between the stored ones and the live ones, and none comes twice.
   */
  watch(
    request: Partial<EventRequest>,
    onEvent: EventListener,
  ): { stored: StoredSecurityEvent[]; stop: () => void } {
    const query = this.compile(request);
    const stored = this.store.list(query);
    const last = stored.at(-1);
    const watch: Watch = {
      query: { ...query, afterId: Math.max(query.afterId ?? 0, last?.id ?? 0) },
      onEvent,
    };
    this.watches.add(watch);
    return { stored, stop: () => void this.watches.delete(watch) };
  }

  /** Checks a request's bounds; throws EVENTS_QUERY_INVALID or POLICY_INVALID for the pattern. */
  private compile(request: Partial<EventRequest>): EventQuery {
    const limit = request.limit || DEFAULT_EVENT_LIMIT;
    const sinceMs = request.sinceUnixMs ?? 0;
    const afterId = request.afterId ?? 0;
    const problems: string[] = [];
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENT_LIMIT) {
      problems.push(`limit: ${limit}: must be 1 to ${MAX_EVENT_LIMIT}`);
    }
    if (!Number.isSafeInteger(sinceMs) || sinceMs < 0) {
      problems.push(`since_unix_ms: ${sinceMs}: must be a time or 0`);
    }
    if (!Number.isSafeInteger(afterId) || afterId < 0) {
      problems.push(`after_id: ${afterId}: must be an event id or 0`);
    }
    if (problems.length > 0) {
      throw new EventError(
        'EVENTS_QUERY_INVALID',
        `event query refused: ${problems.join('; ')}`,
        problems,
      );
    }
    const pattern = request.identityPattern
      ? compilePattern(request.identityPattern, this.trustDomain)
      : undefined;
    return {
      limit,
      ...(sinceMs > 0 ? { sinceMs } : {}),
      ...(afterId > 0 ? { afterId } : {}),
      ...(pattern ? { identity: pattern } : {}),
    };
  }
}

/** Whether a stored event passes a query's filters (the limit aside). */
function matchesQuery(query: EventQuery, event: StoredSecurityEvent): boolean {
  if (query.afterId !== undefined && event.id <= query.afterId) return false;
  if (query.sinceMs !== undefined && event.atMs < query.sinceMs) return false;
  const identity = query.identity;
  return !identity || identity.matches(event.reporterId) || identity.matches(event.peerId);
}
