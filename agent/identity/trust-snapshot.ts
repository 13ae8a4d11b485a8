import { errorMessage } from '../../certs/errors.js';
import { checkMeshPolicy, type MeshPolicy } from '../../certs/policy/index.js';
import { TrustStore } from '../../certs/x509/index.js';
import type { MeshPolicyRecord, TrustUpdate } from '../../proto/index.js';

/** A mesh policy version pushed by the CA, compiled for the agent's trust domain. */
export interface SnapshotMeshPolicy {
  /** The CA's version, from 1. */
  readonly version: number;
  readonly policy: MeshPolicy;
  readonly setUnixMs: number;
  /** The admin identity that set it. */
  readonly setBy: string;
}

/** A mesh policy version that did not compile: the snapshot keeps the last good one. */
export interface SnapshotMeshRejection {
  readonly version: number;
  readonly problems: readonly string[];
}

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
  /**
   * The newest mesh policy that compiled; undefined while the CA has none
   * (version 0, the open policy). Kept, same object, while the version is
   * unchanged or the next one is rejected.
   */
  readonly meshPolicy: SnapshotMeshPolicy | undefined;
  /** Set while the CA's current mesh policy version is one that did not compile. */
  readonly meshRejection: SnapshotMeshRejection | undefined;
}

/**
 * Builds a snapshot from a WatchTrust update. The previous TrustStore is
 * reused when the bundle text is unchanged, so revocation-only updates keep
 * its parsed roots and intermediate cache, and the previous compiled mesh
 * policy (or rejection) while its version is unchanged. A mesh policy that
 * does not compile for `trustDomain` never fails the update: the last good
 * one is kept and the rejection recorded. Throws X509Error CERT_MALFORMED for
 * a bundle that cannot be parsed.
 */
export function trustSnapshotOf(
  update: TrustUpdate,
  previous: TrustSnapshot | undefined,
  receivedAt: Date,
  trustDomain: string,
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
    ...meshPolicyOf(update.meshPolicy ?? undefined, previous, trustDomain),
  });
}

function meshPolicyOf(
  record: MeshPolicyRecord | undefined,
  previous: TrustSnapshot | undefined,
  trustDomain: string,
): Pick<TrustSnapshot, 'meshPolicy' | 'meshRejection'> {
  const version = record?.version ?? 0;
  const kept = previous?.meshPolicy;
  if (version === 0) return { meshPolicy: undefined, meshRejection: undefined };
  if (kept?.version === version) return { meshPolicy: kept, meshRejection: undefined };
  if (previous?.meshRejection?.version === version) {
    return { meshPolicy: kept, meshRejection: previous.meshRejection };
  }

  let value: unknown;
  try {
    value = JSON.parse(record?.documentJson ?? '');
  } catch (err) {
    return reject(kept, version, [`document_json is not JSON: ${errorMessage(err)}`]);
  }
  const result = checkMeshPolicy(value, trustDomain);
  if (!result.ok) return reject(kept, version, result.problems);
  return {
    meshPolicy: Object.freeze({
      version,
      policy: result.policy,
      setUnixMs: record?.setUnixMs ?? 0,
      setBy: record?.setBy ?? '',
    }),
    meshRejection: undefined,
  };
}

function reject(
  kept: SnapshotMeshPolicy | undefined,
  version: number,
  problems: readonly string[],
): Pick<TrustSnapshot, 'meshPolicy' | 'meshRejection'> {
  return {
    meshPolicy: kept,
    meshRejection: Object.freeze({ version, problems: Object.freeze([...problems]) }),
  };
}
