// The agent's security-event feed: events logged by any module are taken
// from the logging call into a bounded queue and forwarded to the CA in
// small batches. Depends on certs/ and identity/ (clock, backoff) only; the
// data path never waits on it.
export {
  DEFAULT_EVENT_QUEUE_SIZE,
  EventQueue,
  MAX_EVENT_QUEUE_SIZE,
  type DroppedSpan,
  type EventQueueCounts,
} from './event-queue.js';
export {
  EVENT_FLUSH_INTERVAL_MS,
  EVENT_RETRY_BACKOFF,
  EventReporter,
  MAX_EVENT_BATCH,
  type EventReporterOptions,
} from './event-reporter.js';
export { CaEventSender } from './ca-event-sender.js';
export { createEventFeed, EVENT_REPORT_DEADLINE_MS, type EventFeed } from './event-feed.js';
export { FORWARDED_EVENTS, MAX_DETAIL_JSON_BYTES, toSecurityEvent } from './security-event.js';
