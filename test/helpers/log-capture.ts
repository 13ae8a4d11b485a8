import { createLogger, type Logger } from '../../certs/log.js';

/** A logger whose JSON lines are parsed and kept, so tests can prove events were emitted. */
export interface CapturedLog {
  log: Logger;
  lines: Record<string, unknown>[];
  /** Lines carrying `event === name`. */
  events(name: string): Record<string, unknown>[];
}

/** Creates a logger that keeps its lines in memory instead of printing them. */
export function captureLog(component: string): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    component,
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  return { log, lines, events: (name) => lines.filter((l) => l['event'] === name) };
}
