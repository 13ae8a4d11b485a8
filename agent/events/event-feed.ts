import type { CaClient } from '../../certs/client/index.js';
import type { Logger } from '../../certs/log.js';
import { CaEventSender } from './ca-event-sender.js';
import type { EventQueue } from './event-queue.js';
import { EventReporter } from './event-reporter.js';

/** Deadline of one ReportEvents call: a slow CA must not hold the one call in flight for long. */
export const EVENT_REPORT_DEADLINE_MS = 5000;

/** The running feed of an agent's security events to the CA. */
export interface EventFeed {
  /** Starts sending; call once the agent holds a certificate. */
  start(): void;
  /** Stops, trying for up to `graceMs` to send what is left, and closes the CA client. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Wires a queue to the CA: batches go out over ReportEvents with the
 * identity's current certificate, a new client after each rotation.
 */
export function createEventFeed(
  queue: EventQueue,
  identity: {
    openCaClient(options: { withCredential: boolean; deadlineMs?: number }): CaClient;
    readonly credential: unknown;
  },
  log: Logger,
): EventFeed {
  const sender = new CaEventSender(
    () => identity.openCaClient({ withCredential: true, deadlineMs: EVENT_REPORT_DEADLINE_MS }),
    () => identity.credential,
  );
  const reporter = new EventReporter({ queue, send: sender.send, log });
  return {
    start: () => reporter.start(),
    stop: async (graceMs) => {
      await reporter.stop(graceMs);
      sender.close();
    },
  };
}
