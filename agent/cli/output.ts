import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import type * as pb from '../../proto/index.js';

/** Where a command writes: injected so tests capture output without a subprocess. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** The process's own stdout and stderr. */
export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Renders rows as a left-aligned text table with a header line. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Prints a value as stable, indented JSON. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** An ISO timestamp from Unix milliseconds, or `-` for zero. */
export function isoOf(unixMs: number): string {
  return unixMs ? new Date(unixMs).toISOString() : '-';
}

/** The package version, read from the nearest package.json above this file. */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'palisade' && pkg.version) return pkg.version;
    } catch {
      // No package.json at this level: keep walking up.
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}

/** A mesh policy record as JSON output: the document parsed, times in ISO form. */
export function policyJson(record: pb.MeshPolicyRecord): Record<string, unknown> {
  return {
    version: record.version,
    setBy: record.setBy,
    setAt: isoOf(record.setUnixMs),
    source: record.source,
    document: JSON.parse(record.documentJson) as unknown,
  };
}

/**
 * A mesh policy record for people: its version, who set it when and from
 * where, then the document as YAML (which `ca policy set` reads back).
 */
export function formatPolicy(record: pb.MeshPolicyRecord): string {
  const document = stringifyYaml(JSON.parse(record.documentJson));
  const indented = document
    .trimEnd()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  return (
    [
      `version: ${record.version}${record.version === 0 ? ' (none set: the open policy)' : ''}`,
      `set by: ${record.setBy || '-'}`,
      `set at: ${isoOf(record.setUnixMs)}`,
      `source: ${record.source || '-'}`,
      `document:\n${indented}`,
    ].join('\n') + '\n'
  );
}

/** One line of a mesh policy document's effect, for the history table. */
export function summarisePolicy(documentJson: string): string {
  const doc = JSON.parse(documentJson) as {
    mode?: string;
    default?: string;
    deny?: unknown[];
    maxCertTtl?: string | null;
  };
  return (
    `mode ${doc.mode ?? '-'}, default ${doc.default ?? '-'}, ` +
    `${doc.deny?.length ?? 0} deny rule(s), maxCertTtl ${doc.maxCertTtl ?? 'CA limit'}`
  );
}

/** A stored security event as one JSON line (`ca events --json`). */
export function eventJsonLine(stored: pb.StoredEventMessage): string {
  const event = stored.event;
  return `${JSON.stringify({
    id: stored.id,
    at: isoOf(event?.atUnixMs ?? 0),
    kind: event?.kind ?? '',
    reporterId: stored.reporterId,
    direction: event?.direction ?? '',
    peerId: event?.peerId ?? '',
    reason: event?.reason ?? '',
    rule: event?.rule ?? '',
    detail: event?.detailJson ? (JSON.parse(event.detailJson) as unknown) : {},
    receivedAt: isoOf(stored.receivedUnixMs),
  })}\n`;
}

/**
 * A stored security event as one line for people: time, reporter, kind,
 * direction, peer, reason and rule, `-` for an empty field, quoted when a
 * value holds spaces.
 */
export function formatEventLine(stored: pb.StoredEventMessage): string {
  const event = stored.event;
  const field = (value: string | undefined) =>
    !value ? '-' : /\s/.test(value) ? JSON.stringify(value) : value;
  return `${[
    isoOf(event?.atUnixMs ?? 0),
    stored.reporterId,
    field(event?.kind),
    field(event?.direction),
    field(event?.peerId),
    field(event?.reason),
    field(event?.rule),
  ].join(' ')}\n`;
}
