import { TrustStore } from '../../certs/x509/index.js';
import type { TrustUpdate } from '../../proto/index.js';

/** One version of the trust state pushed by the CA, ready for handshakes. */
export interface TrustSnapshot {
  readonly version: number;
  /** The trusted roots, PEM, as the CA sent them. */
  readonly bundlePem: readonly string[];
  readonly trustStore: TrustStore;
  /** Lowercase hex serials of revoked, unexpired certificates. */
  readonly revokedSerials: ReadonlySet<string>;
  /** SPIFFE IDs revoked as a whole. */
  readonly revokedIds: ReadonlySet<string>;
  readonly receivedAt: Date;
}

/**
 * Builds a snapshot from a WatchTrust update. The previous TrustStore is
 * reused when the bundle text is unchanged, so revocation-only updates keep
 * its parsed roots and intermediate cache. Throws X509Error CERT_MALFORMED
 * for a bundle that cannot be parsed.
 */
export function trustSnapshotOf(
  update: TrustUpdate,
  previous: TrustSnapshot | undefined,
  receivedAt: Date,
): TrustSnapshot {
  const bundlePem = Object.freeze([...update.trustBundlePem]);
  const sameBundle =
    previous !== undefined &&
    previous.bundlePem.length === bundlePem.length &&
    previous.bundlePem.every((pem, i) => pem === bundlePem[i]);
  const trustStore = sameBundle ? previous.trustStore : new TrustStore([...bundlePem]);
  return Object.freeze({
    version: update.version,
    bundlePem,
    trustStore,
    revokedSerials: new Set(update.revokedSerials.map((s) => s.toLowerCase())),
    revokedIds: new Set(update.revokedIds),
    receivedAt,
  });
}
