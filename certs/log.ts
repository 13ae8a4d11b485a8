import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/** Log levels an operator may choose. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A log level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Receives the fields of every line logged with an `event` field, at the
 * moment it is logged, by this logger and its children. It runs inside the
 * logging call: it must be quick, must not throw, and must not log.
 */
export type LogEventHook = (fields: Readonly<Record<string, unknown>>, level: number) => void;

/**
 * Creates a JSON-lines logger with the fields every Palisade line carries:
 * `ts` (ISO time), `level` (name), `msg` and `component`. Writes to stdout
 * unless a destination is given (tests pass a stream to read events back).
 * `onEvent` sees each security event logged (lines below `level` are not
 * logged, so not seen either).
 */
export function createLogger(options: {
  component: string;
  level?: LogLevel;
  destination?: DestinationStream;
  onEvent?: LogEventHook;
}): Logger {
  const onEvent = options.onEvent;
  return pino(
    {
      level: options.level ?? 'info',
      ...(onEvent
        ? {
            hooks: {
              logMethod(args, method, level) {
                const fields: unknown = args[0];
                if (
                  typeof fields === 'object' &&
                  fields !== null &&
                  typeof (fields as { event?: unknown }).event === 'string'
                ) {
                  onEvent(fields as Record<string, unknown>, level);
                }
                method.apply(this, args);
              },
            },
          }
        : {}),
      base: { component: options.component },
      messageKey: 'msg',
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['token', 'key', 'private_key', 'passphrase', 'csr', '*.token', '*.key'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
