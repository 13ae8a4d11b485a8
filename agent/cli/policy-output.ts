// Output of the mesh policy and security-event commands; kept apart from
// output.ts so that only these commands load the YAML printer.
import { stringify as stringifyYaml } from 'yaml';
import type * as pb from '../../proto/index.js';
import { isoOf } from './output.js';

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
