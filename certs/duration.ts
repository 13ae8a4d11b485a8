import { PalisadeError } from './errors.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, y: 31536000 };
const DURATION = /^(\d+)(s|m|h|d|y)$/;

/**
 * Parses a duration such as `90s`, `10m`, `1h`, `30d` or `10y` into whole
 * seconds; a bare number is seconds. Throws DURATION_INVALID on anything else.
 */
export function parseDurationSeconds(input: string): number {
  const text = input.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const match = DURATION.exec(text);
  if (!match) {
    throw new PalisadeError(
      'DURATION_INVALID',
      `not a duration: ${JSON.stringify(input)} (use a number with s, m, h, d or y, e.g. 10m)`,
    );
  }
  return Number(match[1]) * (UNIT_SECONDS[match[2] as string] as number);
}

/** Formats whole seconds in the largest unit that divides them, e.g. 3600 -> `1h`. */
export function formatDurationSeconds(seconds: number): string {
  for (const unit of ['y', 'd', 'h', 'm'] as const) {
    const size = UNIT_SECONDS[unit] as number;
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
