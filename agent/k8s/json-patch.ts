import { PalisadeError } from '../../certs/errors.js';

/** One RFC 6902 operation, of the kinds the webhook emits. */
export type JsonPatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/**
 * The RFC 6902 patch that turns `before` into `after`. Objects are diffed
 * key by key; an array that changed is replaced whole, which keeps the
 * patch correct without index arithmetic (the admission chain applies it
 * to exactly the object it was computed from).
 */
export function diffToJsonPatch(before: unknown, after: unknown, path = ''): JsonPatchOp[] {
  if (isEqual(before, after)) return [];
  if (!isRecord(before) || !isRecord(after)) return [{ op: 'replace', path, value: after }];
  const ops: JsonPatchOp[] = [];
  for (const key of Object.keys(before)) {
    if (!(key in after)) ops.push({ op: 'remove', path: `${path}/${escapeToken(key)}` });
  }
  for (const [key, value] of Object.entries(after)) {
    const child = `${path}/${escapeToken(key)}`;
    if (!(key in before)) ops.push({ op: 'add', path: child, value });
    else ops.push(...diffToJsonPatch(before[key], value, child));
  }
  return ops;
}

/**
 * Applies add, replace and remove operations to a copy of `document`, as
 * RFC 6902 defines them. Throws JSON_PATCH_INVALID on a path that does not
 * resolve.
 */
export function applyJsonPatch(document: unknown, ops: readonly JsonPatchOp[]): unknown {
  let root = structuredClone(document);
  for (const op of ops) {
    if (op.path === '') {
      if (op.op === 'remove') throw invalid(op.path, 'cannot remove the root');
      root = structuredClone(op.value);
      continue;
    }
    const tokens = op.path.split('/').slice(1).map(unescapeToken);
    const last = tokens.pop() as string;
    let parent: unknown = root;
    for (const token of tokens) {
      parent = childOf(parent, token, op.path);
    }
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length) {
        throw invalid(op.path, 'array index out of range');
      }
      if (op.op === 'add') parent.splice(index, 0, structuredClone(op.value));
      else if (index >= parent.length) throw invalid(op.path, 'array index out of range');
      else if (op.op === 'remove') parent.splice(index, 1);
      else parent[index] = structuredClone(op.value);
    } else if (isRecord(parent)) {
      if (op.op !== 'add' && !(last in parent)) throw invalid(op.path, 'no such member');
      if (op.op === 'remove') delete parent[last];
      else parent[last] = structuredClone(op.value);
    } else {
      throw invalid(op.path, 'parent is not a container');
    }
  }
  return root;
}

function childOf(node: unknown, token: string, path: string): unknown {
  if (Array.isArray(node)) {
    const child: unknown = node[Number(token)];
    if (child === undefined) throw invalid(path, 'array index out of range');
    return child;
  }
  if (isRecord(node) && token in node) return node[token];
  throw invalid(path, 'no such member');
}

function invalid(path: string, problem: string): PalisadeError {
  return new PalisadeError('JSON_PATCH_INVALID', `${JSON.stringify(path)}: ${problem}`);
}

function escapeToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function unescapeToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => isEqual(item, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((key) => key in b && isEqual(a[key], b[key]))
    );
  }
  return false;
}
