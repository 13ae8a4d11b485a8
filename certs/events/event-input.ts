import { isSpiffeId } from '../spiffe-id.js';
import type { SecurityEventInput } from '../store/index.js';
import { EventError } from './event-error.js';

/** Most events one ReportEvents batch may carry. */
export const MAX_EVENTS_PER_BATCH = 500;

/** Largest `detail_json` of one event, in bytes. */
export const MAX_DETAIL_JSON_BYTES = 4096;

/** Longest text field of an event, in characters (a SPIFFE ID may take 2048 bytes). */
const EVENT_FIELD_LIMITS = Object.freeze({ kind: 64, reason: 256, rule: 1024 });

/** How far ahead of the CA's clock an event's time may be, in ms (clock skew). */
const MAX_FUTURE_SKEW_MS = 10 * 60_000;

/** The directions an event may name; '' when it concerns no connection. */
const EVENT_DIRECTIONS = ['', 'inbound', 'outbound'] as const;

/** Problems named in one refusal at most; the count of the rest follows. */
const MAX_PROBLEMS_NAMED = 20;

// A log event name: dotted lowercase, at least two parts (`peer.rejected`).
const KIND = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/** A SecurityEvent as proto-loader delivers it (defaults filled in). */
export interface SecurityEventWire {
  kind: string;
  atUnixMs: number;
  peerId: string;
  direction: string;
  reason: string;
  rule: string;
  detailJson: string;
}

/**
 * Checks a reported batch and returns it in store form. Throws EventError
 * EVENTS_INVALID naming each problem (`events[3].detail_json: ...`) when any
 * event is bad: a batch is taken whole or not at all, so a reporter never has
 * to guess which of its events were kept.
 */
export function checkEventBatch(
  events: readonly SecurityEventWire[],
  nowMs: number,
): SecurityEventInput[] {
  if (events.length > MAX_EVENTS_PER_BATCH) {
    throw invalid([`events: ${events.length} in one batch, at most ${MAX_EVENTS_PER_BATCH}`]);
  }
  const problems: string[] = [];
  const checked = events.map((event, index) => checkEvent(event, index, nowMs, problems));
  if (problems.length > 0) throw invalid(problems);
  return checked;
}

function checkEvent(
  event: SecurityEventWire,
  index: number,
  nowMs: number,
  problems: string[],
): SecurityEventInput {
  const where = `events[${index}]`;
  const text = (value: unknown, field: string, max: number): string => {
    if (typeof value !== 'string') {
      problems.push(`${where}.${field}: not text`);
      return '';
    }
    if (value.length > max) problems.push(`${where}.${field}: longer than ${max} characters`);
    return value;
  };

  const kind = text(event.kind, 'kind', EVENT_FIELD_LIMITS.kind);
  if (kind.length <= EVENT_FIELD_LIMITS.kind && !KIND.test(kind)) {
    problems.push(`${where}.kind: ${JSON.stringify(kind)} is not a dotted event name`);
  }

  const atMs = event.atUnixMs;
  if (!Number.isSafeInteger(atMs) || atMs <= 0) {
    problems.push(`${where}.at_unix_ms: missing or not a positive time`);
  } else if (atMs > nowMs + MAX_FUTURE_SKEW_MS) {
    problems.push(`${where}.at_unix_ms: more than ${MAX_FUTURE_SKEW_MS / 60_000}m in the future`);
  }

  const peerId = typeof event.peerId === 'string' ? event.peerId : '';
  if (peerId !== '' && !isSpiffeId(peerId)) {
    problems.push(`${where}.peer_id: not a SPIFFE ID`);
  }

  const direction = typeof event.direction === 'string' ? event.direction : '';
  if (!(EVENT_DIRECTIONS as readonly string[]).includes(direction)) {
    problems.push(
      `${where}.direction: ${JSON.stringify(direction)}: must be inbound, outbound or empty`,
    );
  }

  return {
    kind,
    atMs,
    peerId,
    direction,
    reason: text(event.reason, 'reason', EVENT_FIELD_LIMITS.reason),
    rule: text(event.rule, 'rule', EVENT_FIELD_LIMITS.rule),
    detailJson: checkDetail(event.detailJson, where, problems),
  };
}

/** Returns the detail as compact JSON text ('{}' when empty). */
function checkDetail(value: unknown, where: string, problems: string[]): string {
  if (value === '' || value === undefined) return '{}';
  if (typeof value !== 'string') {
    problems.push(`${where}.detail_json: not text`);
    return '{}';
  }
  if (Buffer.byteLength(value, 'utf8') > MAX_DETAIL_JSON_BYTES) {
    problems.push(`${where}.detail_json: larger than ${MAX_DETAIL_JSON_BYTES} bytes`);
    return '{}';
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    // The parser's position adds nothing an operator needs; the field is named.
    problems.push(`${where}.detail_json: not JSON`);
    return '{}';
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`${where}.detail_json: must be a JSON object`);
    return '{}';
  }
  return JSON.stringify(parsed);
}

function invalid(problems: string[]): EventError {
  const named = problems.slice(0, MAX_PROBLEMS_NAMED);
  const more = problems.length - named.length;
  const text = named.join('; ') + (more > 0 ? `; and ${more} more` : '');
  return new EventError('EVENTS_INVALID', `event batch refused: ${text}`, problems);
}
