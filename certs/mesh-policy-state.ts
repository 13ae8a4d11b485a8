import { formatDurationSeconds, parseDurationSeconds } from './duration.js';
import {
  checkMeshPolicy,
  OPEN_MESH_DOCUMENT,
  parseMeshPolicyText,
  PolicyError,
  readYamlValue,
  type MeshPolicy,
} from './policy/index.js';
import {
  policyDocumentSha256,
  type MeshPolicySetResult,
  type MeshPolicyVersion,
  type PolicyStore,
} from './store/index.js';

/** The mesh policy in force: compiled for decisions, and as stored for the wire. */
export interface CurrentMeshPolicy {
  readonly policy: MeshPolicy;
  /** Version 0 (the open policy, never stored) until an operator sets one. */
  readonly record: MeshPolicyVersion;
}

/**
 * Holds the CA's mesh policy: loads the stored version at start, refuses a
 * bad document with every problem named, and stores a good one (which bumps
 * the trust version). The authority publishes; this only decides and stores.
 */
export class MeshPolicyState {
  private readonly store: PolicyStore;
  private readonly trustDomain: string;
  private readonly minTtlSeconds: number;
  private held: CurrentMeshPolicy;

  /** Loads the stored policy; throws POLICY_INVALID if the stored document no longer compiles. */
  constructor(store: PolicyStore, options: { trustDomain: string; minTtlSeconds: number }) {
    this.store = store;
    this.trustDomain = options.trustDomain;
    this.minTtlSeconds = options.minTtlSeconds;
    this.held = this.load();
  }

  /** The policy in force. */
  get current(): CurrentMeshPolicy {
    return this.held;
  }

  /**
   * Validates an operator's document (YAML or JSON) and stores it as the next
   * version unless its canonical form equals the current one. Throws
   * PolicyError POLICY_INVALID listing every problem; nothing is stored then.
   */
  set(text: string, source: string, setBy: string, now: Date): MeshPolicySetResult {
    const policy = compileMeshPolicyText(text, source, this.trustDomain, this.minTtlSeconds);
    const result = this.store.set({
      documentJson: JSON.stringify(policy.document),
      source,
      setBy,
      now,
    });
    if (result.changed) this.held = { policy, record: result.policy };
    return result;
  }

  /** Stored versions, newest first. */
  history(limit?: number): MeshPolicyVersion[] {
    return this.store.history(limit);
  }

  private load(): CurrentMeshPolicy {
    const stored = this.store.current();
    if (!stored) return openPolicy(this.trustDomain);
    const result = checkMeshPolicy(JSON.parse(stored.documentJson), this.trustDomain);
    if (!result.ok) {
      throw new PolicyError(
        'POLICY_INVALID',
        `stored mesh policy version ${stored.version} does not compile: ` +
          result.problems.join('; '),
        { problems: result.problems },
      );
    }
    return { policy: result.policy, record: stored };
  }
}

/**
 * Compiles an operator's mesh policy document for a CA whose shortest
 * certificate lifetime is `minTtlSeconds`: the document's own rules, and a
 * `maxCertTtl` no shorter than that lifetime (the CA could not honour it).
 * Throws one PolicyError POLICY_INVALID naming every problem, one per line.
 */
export function compileMeshPolicyText(
  text: string,
  source: string,
  trustDomain: string,
  minTtlSeconds: number,
): MeshPolicy {
  let policy: MeshPolicy | undefined;
  let problems: string[] = [];
  try {
    policy = parseMeshPolicyText(text, source, trustDomain);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    problems = [...err.problems];
  }
  const ttlSeconds = policy ? policy.maxCertTtlSeconds : maxCertTtlOf(text);
  if (ttlSeconds !== undefined && ttlSeconds >= 1 && ttlSeconds < minTtlSeconds) {
    problems.push(
      `maxCertTtl: ${formatDurationSeconds(ttlSeconds)} is shorter than this CA's shortest ` +
        `certificate lifetime (${formatDurationSeconds(minTtlSeconds)})`,
    );
  }
  if (problems.length > 0 || !policy) {
    const lines = problems.map((p) => `  - ${p}`).join('\n');
    throw new PolicyError(
      'POLICY_INVALID',
      `mesh policy refused (${source || 'no source'}), ${problems.length} problem(s):\n${lines}`,
      { problems },
    );
  }
  return policy;
}

/** The open policy as version 0: what agents get before an operator sets one. */
function openPolicy(trustDomain: string): CurrentMeshPolicy {
  const result = checkMeshPolicy(OPEN_MESH_DOCUMENT, trustDomain);
  if (!result.ok)
    throw new Error(`open mesh policy does not compile: ${result.problems.join('; ')}`);
  const documentJson = JSON.stringify(result.policy.document);
  return {
    policy: result.policy,
    record: {
      version: 0,
      documentJson,
      documentSha256: policyDocumentSha256(documentJson),
      source: '',
      setBy: '',
      setAt: new Date(0),
    },
  };
}

/** The `maxCertTtl` of a document that failed elsewhere, so its TTL problem is named too. */
function maxCertTtlOf(text: string): number | undefined {
  try {
    const value = readYamlValue(text, '');
    const ttl = (value as { maxCertTtl?: unknown } | null)?.maxCertTtl;
    return typeof ttl === 'string' || typeof ttl === 'number'
      ? parseDurationSeconds(String(ttl))
      : undefined;
  } catch {
    // Unparseable YAML or a bad duration is already among the named problems.
    return undefined;
  }
}
