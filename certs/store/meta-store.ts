import { createHash } from 'node:crypto';

import type { Statements } from './statements.js';
import type { StoreContext } from './store-context.js';
import { StoreError } from './store-error.js';
import { checkText } from './store-input.js';

const TRUST_VERSION_KEY = 'trust_version';
const RESERVED_META_KEYS = new Set(['schema_version', TRUST_VERSION_KEY]);

/**
 * Operator meta values (PEM bundles, settings) and the trust version, both
 * in the `meta` table. Every change is durable and audited.
 */
export class MetaStore {
  readonly #ctx: StoreContext;
  readonly #stmts: Statements;

  constructor(ctx: StoreContext, stmts: Statements) {
    this.#ctx = ctx;
    this.#stmts = stmts;
  }

  /** Returns a meta value, or undefined when it was never set. */
  get(key: string): string | undefined {
    checkText(key, 'meta key');
    return this.#ctx.read('reading meta', () => this.#stmts.getMeta.get(key)?.value);
  }

  /** Sets a meta value durably, auditing its SHA-256; refuses the store's own keys. */
  set(key: string, value: string, auditEvent: string): void {
    checkText(key, 'meta key');
    if (RESERVED_META_KEYS.has(key)) {
      throw new StoreError('STORE_INVALID', `meta key ${key} belongs to the store`);
    }
    if (typeof value !== 'string') throw new StoreError('STORE_INVALID', 'meta value not text');
    const valueSha256 = createHash('sha256').update(value, 'utf8').digest('hex');

    this.#ctx.write('setting meta', true, () => {
      this.#stmts.setMeta.run(key, value);
      this.#ctx.audit(
        auditEvent,
        { key, value_sha256: valueSha256, value_bytes: Buffer.byteLength(value) },
        new Date(),
      );
    });
  }

  /** Returns the trust version: 0 on a new store. */
  trustVersion(): number {
    return this.#ctx.read('reading the trust version', () => this.#ctx.readTrustVersion());
  }

  /** Bumps the trust version durably, audits `trust.updated`, and returns the new version. */
  bumpTrustVersion(reason: string): number {
    checkText(reason, 'trust update reason');
    return this.#ctx.write('bumping the trust version', true, () => {
      const version = this.#ctx.bumpTrustVersion();
      this.#ctx.audit('trust.updated', { reason, trust_version: version }, new Date());
      return version;
    });
  }
}

/** Reads the trust version from meta: 0 until the first bump. */
export function readTrustVersion(stmts: Statements): number {
  return Number(stmts.getMeta.get(TRUST_VERSION_KEY)?.value ?? '0');
}

/** Increments the trust version in meta and returns it; inside a write transaction only. */
export function incrementTrustVersion(stmts: Statements): number {
  const version = readTrustVersion(stmts) + 1;
  stmts.setMeta.run(TRUST_VERSION_KEY, String(version));
  return version;
}
