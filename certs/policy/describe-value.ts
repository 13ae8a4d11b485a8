/**
 * Names a value read from an untyped policy document for an error message:
 * `missing`, `null`, `a list`, `a mapping`, a quoted string, or the value.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}
