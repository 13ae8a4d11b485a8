import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/** Log levels an operator may choose. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A log level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Creates a JSON-lines logger with the fields every Palisade line carries:
 * `ts` (ISO time), `level` (name), `msg` and `component`. Writes to stdout
 * unless a destination is given (tests pass a stream to read events back).
 */
export function createLogger(options: {
  component: string;
  level?: LogLevel;
  destination?: DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
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
