import { PalisadeError } from '../errors.js';

/**
 * Stable codes of the event feed: `EVENTS_INVALID` is a batch refused for
 * its content (every problem named, nothing stored), `EVENTS_QUERY_INVALID`
 * a list or watch request out of bounds, `EVENTS_RATE_LIMITED` a reporter
 * past its share.
 */
export type EventErrorCode = 'EVENTS_INVALID' | 'EVENTS_QUERY_INVALID' | 'EVENTS_RATE_LIMITED';

/** Raised by the event feed; `problems` names every defect of a refused batch. */
export class EventError extends PalisadeError {
  declare readonly code: EventErrorCode;
  readonly problems: readonly string[];

  constructor(code: EventErrorCode, message: string, problems: readonly string[] = [message]) {
    super(code, message);
    this.name = 'EventError';
    this.problems = Object.freeze([...problems]);
  }
}
