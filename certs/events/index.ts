// The mesh-wide security-event feed of the CA: validation of reported
// batches, a rate limit per reporter, queries and live watches over the
// history the store keeps. It depends on the store and the policy patterns,
// never on the gRPC layer or agent/.
export { EventError, type EventErrorCode } from './event-error.js';
export {
  checkEventBatch,
  MAX_DETAIL_JSON_BYTES,
  MAX_EVENTS_PER_BATCH,
  type SecurityEventWire,
} from './event-input.js';
export {
  DEFAULT_EVENT_LIMIT,
  EventFeed,
  MAX_EVENT_LIMIT,
  type EventListener,
  type EventRequest,
} from './event-feed.js';
export { ReporterRateLimiter } from './rate-limiter.js';
