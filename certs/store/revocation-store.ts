import { toIdentityRevocation, toSerialRevocation, type Statements } from './statements.js';
import type { StoreContext } from './store-context.js';
import { StoreError } from './store-error.js';
import { checkSpiffeId, checkText, dateMs, normalizeSerial } from './store-input.js';
import type { IdentityRevocation, RevocationSet, SerialRevocation } from './types.js';

/**
 * Revocations of single certificates and of whole identities. Every change
 * is durable (fsynced) before it returns, bumps the trust version and is
 * audited in the same transaction.
 */
export class RevocationStore {
  readonly #ctx: StoreContext;
  readonly #stmts: Statements;

  constructor(ctx: StoreContext, stmts: Statements) {
    this.#ctx = ctx;
    this.#stmts = stmts;
  }

  /** Revokes one certificate, or returns its first revocation with `alreadyRevoked`. */
  revokeSerial(
    serialHex: string,
    reason: string,
    now?: Date,
  ): { revocation: SerialRevocation; alreadyRevoked: boolean } {
    const serial = normalizeSerial(serialHex);
    checkText(reason, 'revocation reason');
    const at = now ?? new Date();
    const atMs = dateMs(at, 'now');

    return this.#ctx.write('revoking a serial', true, () => {
      const existing = this.#stmts.serialRevocation.get(serial);
      if (existing) return { revocation: toSerialRevocation(existing), alreadyRevoked: true };
      const cert = this.#stmts.getCert.get(serial);
      if (!cert) throw new StoreError('UNKNOWN_SERIAL', `no certificate with serial ${serial}`);

      this.#stmts.insertSerialRevocation.run(serial, reason, atMs);
      const version = this.#ctx.bumpTrustVersion();
      this.#ctx.audit(
        'cert.revoked',
        { serial, spiffe_id: cert.spiffe_id, reason, trust_version: version },
        at,
      );
      const revocation: SerialRevocation = {
        serialHex: serial,
        spiffeId: cert.spiffe_id,
        reason,
        revokedAt: new Date(atMs),
        notAfter: new Date(cert.not_after_ms),
      };
      return { revocation, alreadyRevoked: false };
    });
  }

  /** Revokes an identity and its unexpired certificates; returns the serials it revoked. */
  revokeIdentity(
    spiffeId: string,
    reason: string,
    now?: Date,
  ): { revocation: IdentityRevocation; serials: string[] } {
    checkSpiffeId(spiffeId);
    checkText(reason, 'revocation reason');
    const at = now ?? new Date();
    const atMs = dateMs(at, 'now');

    return this.#ctx.write('revoking an identity', true, () => {
      const existing = this.#stmts.identityRevocation.get(spiffeId);
      const serials = this.#stmts.unrevokedSerialsOf
        .all(spiffeId, atMs)
        .map((row) => row.serial_hex);
      if (existing && serials.length === 0) {
        return { revocation: toIdentityRevocation(existing), serials };
      }

      if (!existing) this.#stmts.insertIdentityRevocation.run(spiffeId, reason, atMs);
      for (const serial of serials) this.#stmts.insertSerialRevocation.run(serial, reason, atMs);
      const version = this.#ctx.bumpTrustVersion();
      this.#ctx.audit(
        'identity.revoked',
        { spiffe_id: spiffeId, reason, serials, trust_version: version },
        at,
      );
      const revocation = existing
        ? toIdentityRevocation(existing)
        : { spiffeId, reason, revokedAt: new Date(atMs) };
      return { revocation, serials };
    });
  }

  /** Lifts an identity revocation; false, writing nothing, when there was none. */
  unrevokeIdentity(spiffeId: string, now?: Date): boolean {
    checkSpiffeId(spiffeId);
    const at = now ?? new Date();
    dateMs(at, 'now');

    return this.#ctx.write('lifting an identity revocation', true, () => {
      if (this.#stmts.deleteIdentityRevocation.run(spiffeId).changes === 0) return false;
      const version = this.#ctx.bumpTrustVersion();
      this.#ctx.audit('identity.unrevoked', { spiffe_id: spiffeId, trust_version: version }, at);
      return true;
    });
  }

  /** Returns whether the serial has been revoked (expired certificates included). */
  isSerialRevoked(serialHex: string): boolean {
    const serial = normalizeSerial(serialHex);
    return this.#ctx.read('checking a serial', () => !!this.#stmts.serialRevocation.get(serial));
  }

  /** Returns whether the identity is revoked, i.e. blocked from issuance. */
  isIdentityRevoked(spiffeId: string): boolean {
    return this.#ctx.read('checking an identity', () => {
      return !!this.#stmts.identityRevocation.get(spiffeId);
    });
  }

  /** Lists revocations in force at `now`: serials of unexpired certificates, and identities. */
  list(now?: Date): { serials: SerialRevocation[]; identities: IdentityRevocation[] } {
    const nowMs = dateMs(now ?? new Date(), 'now');
    return this.#ctx.snapshot('listing revocations', () => ({
      serials: this.#stmts.liveSerialRevocations.all(nowMs).map(toSerialRevocation),
      identities: this.#stmts.identityRevocations.all().map(toIdentityRevocation),
    }));
  }

  /** Returns what agents must refuse at `now`, read in one snapshot with the trust version. */
  revocationSet(now?: Date): RevocationSet {
    const nowMs = dateMs(now ?? new Date(), 'now');
    return this.#ctx.snapshot('reading the revocation set', () => ({
      version: this.#ctx.readTrustVersion(),
      serials: this.#stmts.liveSerialRevocations.all(nowMs).map((row) => row.serial_hex),
      identities: this.#stmts.identityRevocations.all().map((row) => row.spiffe_id),
    }));
  }
}
