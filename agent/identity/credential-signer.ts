import { CaClient } from '../../certs/client/index.js';
import { PalisadeError, errorCode } from '../../certs/errors.js';
import { createCsr, generateKeyPair, splitPemChain } from '../../certs/x509/index.js';
import { credentialFromSignResponse, type WorkloadCredential } from './credential.js';
import type { ResolvedIdentityOptions } from './identity-options.js';
import { readServiceAccountToken } from './service-account-token.js';
import type { TrustSnapshot } from './trust-snapshot.js';

/** Which proof a signing used, as logged in `cert.rotated` events. */
export type SigningVia = 'token' | 'join-token' | 'renewal';

/** The end of one signing attempt: a checked credential, or the error and its code. */
export type SignOutcome =
  { ok: true; credential: WorkloadCredential } | { ok: false; code: string; error: unknown };

/**
 * Gets certificates from the CA for one identity: a fresh in-memory key pair
 * and CSR per attempt, the proof asked for, a CA client per call (so a root
 * rotation or a new credential is picked up), and the answer checked.
 */
export class CredentialSigner {
  readonly #o: ResolvedIdentityOptions;
  readonly #trust: () => TrustSnapshot | undefined;
  #inFlight: CaClient | undefined;
  #isAborted = false;

  /** `trust` gives the newest snapshot, whose roots are trusted for the CA too. */
  constructor(options: ResolvedIdentityOptions, trust: () => TrustSnapshot | undefined) {
    this.#o = options;
    this.#trust = trust;
  }

  /**
   * Makes a CA client, presenting `credential` over mutual TLS when given.
   * The CA is trusted by the configured roots plus those of the newest trust
   * state, so a root rotation is followed. `deadlineMs` bounds each unary
   * call (the client's default otherwise).
   */
  openClient(credential?: WorkloadCredential, deadlineMs?: number): CaClient {
    const roots = new Set(splitPemChain(this.#o.caBundlePem));
    for (const pem of this.#trust()?.bundlePem ?? []) {
      for (const block of splitPemChain(pem)) roots.add(block);
    }
    return new CaClient({
      address: this.#o.caAddr,
      trustBundlePem: [...roots].join(''),
      trustDomain: this.#o.trustDomain,
      ...(credential
        ? { credential: { keyPem: credential.keyPem, certChainPem: credential.certChainPem } }
        : {}),
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
    });
  }

  /**
   * One signing attempt with the proof `via` (`current` is presented for a
   * renewal). Never throws: every failure is an outcome with its code. The
   * token file is read here, at every use, since the kubelet rotates it.
   */
  async sign(via: SigningVia, current: WorkloadCredential | undefined): Promise<SignOutcome> {
    const { proof, clock, spiffeId } = this.#o;
    let client: CaClient | undefined;
    try {
      const key = await generateKeyPair(this.#o.keyType);
      const csrPem = createCsr({ key, spiffeId });
      const request =
        via === 'renewal'
          ? { renewal: true }
          : proof.kind === 'join-token'
            ? { joinToken: proof.token }
            : { serviceAccountToken: readServiceAccountToken(proof.path) };
      if (this.#isAborted) throw new PalisadeError('IDENTITY_STOPPED', 'signing was aborted');

      client = this.openClient(via === 'renewal' ? current : undefined);
      this.#inFlight = client;
      const response = await client.sign({
        csrPem,
        ttlSeconds: this.#o.certTtlSeconds,
        ...request,
      });
      const credential = credentialFromSignResponse(response, key, spiffeId);
      // Accepting a certificate that is already over by our clock would
      // schedule its renewal at once, again and again: refuse it, back off.
      if (credential.notAfter.getTime() <= clock.now()) {
        throw new PalisadeError(
          'CERT_EXPIRED',
          `the CA issued a certificate expired at ${credential.notAfter.toISOString()} ` +
            'by this clock; check for clock skew',
        );
      }
      return { ok: true, credential };
    } catch (err) {
      return { ok: false, code: errorCode(err), error: err };
    } finally {
      if (this.#inFlight === client) this.#inFlight = undefined;
      client?.close();
    }
  }

  /** Fails the call in flight (CANCELLED) and every later attempt. */
  abort(): void {
    this.#isAborted = true;
    this.#inFlight?.close();
  }
}
