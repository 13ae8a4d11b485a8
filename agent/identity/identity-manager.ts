import type { CaClient } from '../../certs/client/index.js';
import { PalisadeError, errorCode, errorMessage } from '../../certs/errors.js';
import type { TrustUpdate } from '../../proto/index.js';
import { backoffDelayMs } from './backoff.js';
import type { TimerHandle } from './clock.js';
import type { WorkloadCredential } from './credential.js';
import { CredentialSigner, type SigningVia } from './credential-signer.js';
import {
  resolveIdentityOptions,
  type IdentityOptions,
  type ResolvedIdentityOptions,
} from './identity-options.js';
import { renewAtMs } from './renewal-time.js';
import { trustSnapshotOf, type TrustSnapshot } from './trust-snapshot.js';
import { TrustWatch } from './trust-watch.js';

/** Shortest retry delay while the certificate is still valid, in milliseconds. */
const MIN_RETRY_BEFORE_EXPIRY_MS = 100;

/**
 * Renewal errors that no retry of the same proof can cure: the certificate
 * or the identity is refused for good, so only a token can get a new one.
 */
const PERMANENT_RENEWAL_CODES: ReadonlySet<string> = new Set([
  'CERT_REVOKED',
  'CERT_UNKNOWN',
  'IDENTITY_REVOKED',
]);

/**
 * Where the manager stands: `idle` before `start()`, `starting` until a credential and a trust
 * snapshot are held, `ready` while the credential is unexpired, `expired`
 * when it ran out with no replacement, `stopped` after `stop()`.
 */
export type IdentityState = 'idle' | 'starting' | 'ready' | 'expired' | 'stopped';

/**
 * Keeps the workload's X.509-SVID current and its trust state fresh: makes a
 * key pair in memory (a new one at every renewal), has the CA sign it, renews
 * at 40%..60% of each certificate's lifetime, retries with capped backoff
 * while serving on the current certificate, and holds one WatchTrust stream.
 * It only publishes credentials and snapshots; swapping TLS contexts is the
 * TLS layer's job, so live connections are never dropped here.
 */
export class IdentityManager {
  readonly #o: ResolvedIdentityOptions;
  readonly #watch: TrustWatch;
  readonly #credentialListeners = new Set<(c: WorkloadCredential) => void>();
  readonly #trustListeners = new Set<
    (t: TrustSnapshot, previous: TrustSnapshot | undefined) => void
  >();
  readonly #stateListeners = new Set<(s: IdentityState) => void>();
  readonly #readyPromise: Promise<void>;
  #resolveReady: () => void = () => undefined;
  #rejectReady: (err: Error) => void = () => undefined;
  #credential: WorkloadCredential | undefined;
  #trust: TrustSnapshot | undefined;
  #state: IdentityState = 'idle';
  #rotationTimer: TimerHandle | undefined;
  #expiryTimer: TimerHandle | undefined;
  #inFlight: Promise<void> | undefined;
  readonly #signer: CredentialSigner;
  #failures = 0;
  #renewalRefused = false;

  /** Validates the options eagerly; throws IdentityConfigError (CONFIG_INVALID). */
  constructor(options: IdentityOptions) {
    this.#o = resolveIdentityOptions(options);
    this.#signer = new CredentialSigner(this.#o, () => this.#trust);
    this.#watch = new TrustWatch({
      openClient: () => this.#signer.openClient(),
      clock: this.#o.clock,
      random: this.#o.random,
      log: this.#o.log,
      heldVersion: () => this.#trust?.version ?? 0,
      onUpdate: (update) => this.#applyTrust(update),
    });
    this.#readyPromise = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // ready() may never be called; a stop before readiness must not surface
    // as an unhandled rejection.
    this.#readyPromise.catch(() => undefined);
  }

  /** The SPIFFE ID this manager requests, given or derived from the token. */
  get spiffeId(): string {
    return this.#o.spiffeId;
  }

  /** The newest certificate and key; kept after it expires (see `isReady`). */
  get credential(): WorkloadCredential | undefined {
    return this.#credential;
  }

  /** The newest trust state applied. */
  get trust(): TrustSnapshot | undefined {
    return this.#trust;
  }

  /** Where the manager stands now. */
  get state(): IdentityState {
    return this.#state;
  }

  /** Begins signing and watching trust; returns at once. Throws IDENTITY_STOPPED after stop. */
  start(): void {
    if (this.#state === 'stopped') {
      throw new PalisadeError('IDENTITY_STOPPED', 'the identity manager was stopped');
    }
    if (this.#state !== 'idle') return;
    this.#setState('starting');
    this.#watch.start();
    void this.#rotate();
  }

  /** Resolves once a credential and a trust snapshot are held; rejects IDENTITY_STOPPED on stop. */
  ready(): Promise<void> {
    return this.#readyPromise;
  }

  /** Whether a credential is held and unexpired by the injected clock, and trust is present. */
  isReady(): boolean {
    const credential = this.#credential;
    return (
      credential !== undefined &&
      this.#trust !== undefined &&
      this.#o.clock.now() < credential.notAfter.getTime()
    );
  }

  /** Calls `listener` with every new credential; returns the unsubscribe function. */
  onCredential(listener: (c: WorkloadCredential) => void): () => void {
    this.#credentialListeners.add(listener);
    return () => this.#credentialListeners.delete(listener);
  }

  /** Calls `listener` with every trust snapshot applied; returns the unsubscribe function. */
  onTrust(listener: (t: TrustSnapshot, previous: TrustSnapshot | undefined) => void): () => void {
    this.#trustListeners.add(listener);
    return () => this.#trustListeners.delete(listener);
  }

  /** Calls `listener` at every change of state (`expired` too); returns the unsubscribe. */
  onState(listener: (s: IdentityState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /**
   * Makes a CA client that trusts the configured and the current roots and,
   * with `withCredential`, presents the current certificate (for calls such
   * as ReportEvents that take the caller's identity from it). Throws
   * IDENTITY_NOT_READY when a certificate is asked for and none is held yet.
   * The caller closes it; it is bound to this credential, so open a new one
   * after a rotation.
   */
  openCaClient(options: { withCredential: boolean; deadlineMs?: number }): CaClient {
    const credential = this.#credential;
    if (options.withCredential && credential === undefined) {
      throw new PalisadeError('IDENTITY_NOT_READY', 'no certificate is held yet');
    }
    return this.#signer.openClient(
      options.withCredential ? credential : undefined,
      options.deadlineMs,
    );
  }

  /** Cancels timers and the trust stream, closes CA clients, and waits for a signing in flight. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#setState('stopped');
    this.#clearTimer('rotation');
    this.#clearTimer('expiry');
    this.#watch.stop();
    this.#signer.abort();
    await this.#inFlight;
    this.#rejectReady(new PalisadeError('IDENTITY_STOPPED', 'the identity manager was stopped'));
  }

  async #rotate(): Promise<void> {
    this.#rotationTimer = undefined;
    if (this.#state === 'stopped' || this.#inFlight !== undefined) return;
    const run = this.#attemptRotation();
    this.#inFlight = run;
    try {
      await run;
    } finally {
      this.#inFlight = undefined;
    }
  }

  async #attemptRotation(): Promise<void> {
    let via = this.#nextVia();
    let outcome = await this.#signer.sign(via, this.#credential);
    if (
      !outcome.ok &&
      via === 'renewal' &&
      PERMANENT_RENEWAL_CODES.has(outcome.code) &&
      this.#o.proof.kind === 'token-file' &&
      this.#state !== 'stopped'
    ) {
      this.#o.log.warn(
        {
          event: 'cert.renewal_refused',
          err_code: outcome.code,
          reason: errorMessage(outcome.error),
        },
        'renewal refused, falling back to the token file',
      );
      this.#renewalRefused = true;
      via = 'token';
      outcome = await this.#signer.sign(via, this.#credential);
    }
    if (this.#state === 'stopped') return;

    if (outcome.ok) this.#accept(outcome.credential, via);
    else this.#retryLater(outcome, via);
  }

  /** Picks the proof: the join token only ever for the first certificate. */
  #nextVia(): SigningVia {
    const credential = this.#credential;
    const hasTokenFile = this.#o.proof.kind === 'token-file';
    if (credential === undefined) return hasTokenFile ? 'token' : 'join-token';
    const isUsable = !this.#renewalRefused && this.#o.clock.now() < credential.notAfter.getTime();
    return !isUsable && hasTokenFile ? 'token' : 'renewal';
  }

  #accept(credential: WorkloadCredential, via: SigningVia): void {
    const { clock, log, metrics } = this.#o;
    this.#credential = credential;
    this.#failures = 0;
    this.#renewalRefused = false;
    log.info(
      {
        event: 'cert.rotated',
        serial: credential.serialHex,
        peer_id: credential.spiffeId,
        not_after: credential.notAfter.toISOString(),
        via,
      },
      'certificate rotated',
    );
    metrics?.rotations('ok');
    metrics?.certExpiry(credential.notAfter);

    const nowMs = clock.now();
    const notAfterMs = credential.notAfter.getTime();
    // The CA back-dates notBefore for clock skew; count the lifetime from when
    // the certificate arrived, or a short-lived one would look half spent
    // already and be renewed in a loop.
    const validFromMs = Math.max(credential.notBefore.getTime(), nowMs);
    const renewInMs = renewAtMs(validFromMs, notAfterMs, this.#o.random) - nowMs;
    this.#clearTimer('rotation');
    this.#rotationTimer = clock.setTimeout(() => void this.#rotate(), Math.max(0, renewInMs));
    this.#clearTimer('expiry');
    this.#expiryTimer = clock.setTimeout(
      () => this.#expire(credential),
      Math.max(0, notAfterMs - nowMs),
    );

    this.#notify(this.#credentialListeners, credential);
    this.#refreshState();
  }

  #retryLater(outcome: { code: string; error: unknown }, via: SigningVia): void {
    const { clock, log, metrics } = this.#o;
    const nowMs = clock.now();
    let retryInMs = backoffDelayMs(this.#failures++, this.#o.random);
    const notAfterMs = this.#credential?.notAfter.getTime();
    // While the current certificate is valid, retry within half the time it
    // has left: a try landing at expiry itself could no longer renew by it.
    if (notAfterMs !== undefined && nowMs < notAfterMs) {
      retryInMs = Math.min(
        retryInMs,
        Math.max(MIN_RETRY_BEFORE_EXPIRY_MS, (notAfterMs - nowMs) / 2),
      );
    }
    log.warn(
      {
        event: 'cert.rotation_failed',
        err_code: outcome.code,
        reason: errorMessage(outcome.error),
        retry_in_ms: retryInMs,
        via,
      },
      'certificate rotation failed',
    );
    metrics?.rotations('error');
    this.#clearTimer('rotation');
    this.#rotationTimer = clock.setTimeout(() => void this.#rotate(), retryInMs);
  }

  #expire(credential: WorkloadCredential): void {
    this.#expiryTimer = undefined;
    if (this.#credential !== credential || this.#state === 'stopped') return;
    this.#o.log.error(
      { event: 'cert.expired', serial: credential.serialHex, peer_id: credential.spiffeId },
      'certificate expired without a replacement',
    );
    this.#refreshState();
  }

  #applyTrust(update: TrustUpdate): void {
    const { clock, log, metrics } = this.#o;
    if (this.#state === 'stopped') return;
    const previous = this.#trust;
    if (previous !== undefined && update.version < previous.version) {
      log.warn(
        { event: 'trust.stale_ignored', version: update.version, held_version: previous.version },
        'trust update older than the one held, ignored',
      );
      return;
    }

    let snapshot: TrustSnapshot;
    try {
      snapshot = trustSnapshotOf(update, previous, new Date(clock.now()), this.#o.trustDomain);
    } catch (err) {
      log.error(
        {
          event: 'trust.rejected',
          version: update.version,
          err_code: errorCode(err),
          reason: errorMessage(err),
        },
        'trust update rejected, keeping the one held',
      );
      return;
    }
    this.#trust = snapshot;
    log.info(
      {
        event: 'trust.updated',
        version: snapshot.version,
        roots: snapshot.bundlePem.length,
        revoked_serials: snapshot.revokedSerials.size,
        revoked_ids: snapshot.revokedIds.size,
        mesh_policy_version: snapshot.meshPolicy?.version ?? 0,
      },
      'trust state updated',
    );
    metrics?.trustVersion(snapshot.version);
    this.#notify(this.#trustListeners, snapshot, previous);
    this.#refreshState();
    this.#checkOwnRevocation(snapshot, previous);
  }

  /**
   * A certificate of ours that peers now refuse is worth replacing at once
   * rather than at the scheduled renewal; the attempt falls back to the
   * token file when the CA refuses renewal.
   */
  #checkOwnRevocation(snapshot: TrustSnapshot, previous: TrustSnapshot | undefined): void {
    const credential = this.#credential;
    if (credential === undefined) return;
    const isRevoked = (t: TrustSnapshot | undefined) =>
      t !== undefined &&
      (t.revokedSerials.has(credential.serialHex) || t.revokedIds.has(credential.spiffeId));
    if (!isRevoked(snapshot) || isRevoked(previous)) return;

    this.#o.log.warn(
      { event: 'cert.revoked', serial: credential.serialHex, peer_id: credential.spiffeId },
      'own certificate revoked, replacing it now',
    );
    if (this.#inFlight !== undefined) return;
    this.#clearTimer('rotation');
    void this.#rotate();
  }

  #refreshState(): void {
    if (this.#state === 'stopped') return;
    const credential = this.#credential;
    if (this.isReady()) this.#setState('ready');
    else if (credential !== undefined && this.#o.clock.now() >= credential.notAfter.getTime())
      this.#setState('expired');
    else this.#setState('starting');
  }

  #setState(next: IdentityState): void {
    if (next === this.#state) return;
    this.#state = next;
    if (next === 'ready') this.#resolveReady();
    this.#notify(this.#stateListeners, next);
  }

  #clearTimer(which: 'rotation' | 'expiry'): void {
    const handle = which === 'rotation' ? this.#rotationTimer : this.#expiryTimer;
    if (handle !== undefined) this.#o.clock.clearTimeout(handle);
    if (which === 'rotation') this.#rotationTimer = undefined;
    else this.#expiryTimer = undefined;
  }

  #notify<A extends unknown[]>(listeners: Set<(...args: A) => void>, ...args: A): void {
    for (const listener of listeners) {
      try {
        listener(...args);
      } catch (err) {
        // A listener's bug must not stop rotation or the other listeners.
        this.#o.log.error(
          { err_code: errorCode(err), reason: errorMessage(err) },
          'identity listener failed',
        );
      }
    }
  }
}
