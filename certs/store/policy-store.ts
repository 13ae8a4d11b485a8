import { createHash } from 'node:crypto';

import type Database from 'better-sqlite3';

import type { StoreContext } from './store-context.js';
import { StoreError } from './store-error.js';
import { checkLimit, dateMs, MAX_TEXT_LENGTH } from './store-input.js';

/** One stored version of the mesh policy. */
export interface MeshPolicyVersion {
  /** 1, 2, ... in the order they were set. */
  version: number;
  /** The canonical document as JSON, exactly as the CA pushes it. */
  documentJson: string;
  /** SHA-256 of `documentJson` (UTF-8), lowercase hex, as the audit chain records it. */
  documentSha256: string;
  /** Where the operator's document came from (a file name); may be empty. */
  source: string;
  /** SPIFFE ID of the admin that set it. */
  setBy: string;
  setAt: Date;
}

/** What setting a mesh policy did: `changed` is false when the document was already current. */
export interface MeshPolicySetResult {
  policy: MeshPolicyVersion;
  changed: boolean;
  /** The trust version after the call (bumped only when changed). */
  trustVersion: number;
}

interface PolicyRow {
  version: number;
  document_json: string;
  document_sha256: string;
  source: string;
  set_by: string;
  set_at_ms: number;
}

const COLUMNS = 'version, document_json, document_sha256, source, set_by, set_at_ms';

/**
 * The versions of the mesh policy, in the CA's SQLite file. Setting one is a
 * single durable transaction: the new version, its `policy.set` audit record
 * and the trust-version bump that makes every agent fetch it.
 */
export class PolicyStore {
  readonly #ctx: StoreContext;
  readonly #latest: Database.Statement<[], PolicyRow>;
  readonly #history: Database.Statement<[number], PolicyRow>;
  readonly #insert: Database.Statement<[number, string, string, string, string, number]>;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    this.#latest = ctx.db.prepare(
      `SELECT ${COLUMNS} FROM mesh_policies ORDER BY version DESC LIMIT 1`,
    );
    this.#history = ctx.db.prepare(
      `SELECT ${COLUMNS} FROM mesh_policies ORDER BY version DESC LIMIT ?`,
    );
    this.#insert = ctx.db.prepare(
      `INSERT INTO mesh_policies (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`,
    );
  }

  /** The policy in force, or undefined while none was ever set. */
  current(): MeshPolicyVersion | undefined {
    const row = this.#ctx.read('reading the mesh policy', () => this.#latest.get());
    return row ? toVersion(row) : undefined;
  }

  /** Stored versions, newest first, at most `limit` (default DEFAULT_LIST_LIMIT). */
  history(limit?: number): MeshPolicyVersion[] {
    const rows = checkLimit(limit);
    return this.#ctx.read('reading the mesh policy history', () =>
      this.#history.all(rows).map(toVersion),
    );
  }

  /**
   * Stores `documentJson` (already validated and canonical) as the next
   * version, audits `policy.set` and bumps the trust version, durably and in
   * one transaction. A document equal to the current one writes nothing and
   * returns the current version with `changed: false`. Throws STORE_INVALID
   * for text that is not JSON or an over-long source or setter.
   */
  set(input: {
    documentJson: string;
    source: string;
    setBy: string;
    now?: Date;
  }): MeshPolicySetResult {
    checkJson(input.documentJson);
    checkField(input.source, 'policy source', true);
    checkField(input.setBy, 'policy setter', false);
    const at = input.now ?? new Date();
    const atMs = dateMs(at, 'now');
    const documentSha256 = policyDocumentSha256(input.documentJson);

    return this.#ctx.write('setting the mesh policy', true, () => {
      const latest = this.#latest.get();
      if (latest && latest.document_json === input.documentJson) {
        const trustVersion = this.#ctx.readTrustVersion();
        return { policy: toVersion(latest), changed: false, trustVersion };
      }
      const version = (latest?.version ?? 0) + 1;
      this.#insert.run(
        version,
        input.documentJson,
        documentSha256,
        input.source,
        input.setBy,
        atMs,
      );
      const trustVersion = this.#ctx.bumpTrustVersion();
      this.#ctx.audit(
        'policy.set',
        {
          version,
          document_sha256: documentSha256,
          set_by: input.setBy,
          source: input.source,
          trust_version: trustVersion,
        },
        at,
      );
      const policy: MeshPolicyVersion = {
        version,
        documentJson: input.documentJson,
        documentSha256,
        source: input.source,
        setBy: input.setBy,
        setAt: new Date(atMs),
      };
      return { policy, changed: true, trustVersion };
    });
  }
}

function toVersion(row: PolicyRow): MeshPolicyVersion {
  return {
    version: row.version,
    documentJson: row.document_json,
    documentSha256: row.document_sha256,
    source: row.source,
    setBy: row.set_by,
    setAt: new Date(row.set_at_ms),
  };
}

function checkJson(text: string): void {
  try {
    if (typeof text !== 'string') throw new TypeError('not text');
    JSON.parse(text);
  } catch (err) {
    throw new StoreError('STORE_INVALID', 'mesh policy document is not JSON', { cause: err });
  }
}

function checkField(text: string, what: string, mayBeEmpty: boolean): void {
  if (typeof text !== 'string' || text.length > MAX_TEXT_LENGTH || (!mayBeEmpty && text === '')) {
    throw new StoreError(
      'STORE_INVALID',
      `${what} must be ${mayBeEmpty ? 0 : 1} to ${MAX_TEXT_LENGTH} characters`,
    );
  }
}

/** The SHA-256 (hex) of a canonical mesh policy document, as the audit chain records it. */
export function policyDocumentSha256(documentJson: string): string {
  return createHash('sha256').update(documentJson, 'utf8').digest('hex');
}
