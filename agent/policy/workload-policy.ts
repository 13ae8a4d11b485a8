import { createHash } from 'node:crypto';

import {
  compilePattern,
  describeValue,
  invalidPolicy,
  MODES,
  type IdentityPattern,
  type Mode,
} from '../../certs/policy/index.js';

export { MODES, type Mode };

/** Mode used when a policy names none: only mutual TLS is accepted. */
export const DEFAULT_MODE: Mode = 'strict';

/** Hex digits of the SHA-256 kept in a policy version. */
export const POLICY_VERSION_HEX_LENGTH = 12;

/** A workload's own policy, validated and compiled once; immutable. */
export interface WorkloadPolicy {
  /** The compiled allow list, in written order; undefined when the workload has none. */
  readonly allow: readonly IdentityPattern[] | undefined;
  readonly mode: Mode;
  /** When true, denials are logged and reported but not enforced. */
  readonly dryRun: boolean;
  /** Where the policy came from: `flags`, a file path, ... */
  readonly source: string;
  /** First 12 hex digits of the SHA-256 of the canonical policy; equal policies share it. */
  readonly version: string;
}

/** The raw settings a workload policy is built from (flags, annotations, a file). */
export interface WorkloadPolicyInput {
  allow?: string[];
  mode?: string;
  dryRun?: boolean;
  source: string;
}

/** Either a built policy or every problem that kept it from being built. */
export type WorkloadPolicyResult =
  { ok: true; policy: WorkloadPolicy } | { ok: false; problems: string[] };

/**
 * Validates and compiles a workload policy. An empty allow list is kept as
 * one that allows nobody; omit it for the mesh default. Throws PolicyError
 * POLICY_INVALID listing every problem, e.g. `allow[2]: "ns/sho*": ...`.
 */
export function buildWorkloadPolicy(
  input: WorkloadPolicyInput,
  trustDomain: string,
): WorkloadPolicy {
  const result = checkWorkloadPolicy(input, trustDomain);
  if (!result.ok) throw invalidPolicy(input.source, result.problems);
  return result.policy;
}

/**
 * Does the work of buildWorkloadPolicy but returns the problems as a value,
 * with runtime type checks for input read from untyped documents.
 */
export function checkWorkloadPolicy(
  input: { allow?: unknown; mode?: unknown; dryRun?: unknown; source: string },
  trustDomain: string,
): WorkloadPolicyResult {
  const problems: string[] = [];

  let allow: IdentityPattern[] | undefined;
  if (input.allow !== undefined) {
    if (!Array.isArray(input.allow)) {
      problems.push('allow: must be a list of patterns');
    } else {
      allow = [];
      input.allow.forEach((text: unknown, i) => {
        if (typeof text !== 'string') {
          problems.push(`allow[${i}]: must be a string, not ${describeValue(text)}`);
          return;
        }
        try {
          allow?.push(compilePattern(text, trustDomain));
        } catch (err) {
          problems.push(`allow[${i}]: ${(err as Error).message}`);
        }
      });
    }
  }

  let mode: Mode = DEFAULT_MODE;
  if (input.mode !== undefined) {
    if (typeof input.mode === 'string' && (MODES as readonly string[]).includes(input.mode)) {
      mode = input.mode as Mode;
    } else {
      problems.push(`mode: ${describeValue(input.mode)}: must be one of ${MODES.join(', ')}`);
    }
  }

  if (input.dryRun !== undefined && typeof input.dryRun !== 'boolean') {
    problems.push(`dryRun: ${describeValue(input.dryRun)}: must be true or false`);
  }
  const dryRun = input.dryRun === true;

  if (problems.length > 0) return { ok: false, problems };
  const frozenAllow = allow === undefined ? undefined : Object.freeze(allow);
  const policy: WorkloadPolicy = Object.freeze({
    allow: frozenAllow,
    mode,
    dryRun,
    source: input.source,
    version: policyVersion(frozenAllow, mode, dryRun),
  });
  return { ok: true, policy };
}

/**
 * Hashes the policy's meaning, not its spelling or origin: patterns in full
 * form (`ns/a/sa/b` and `spiffe://td/ns/a/sa/b` are one rule), in written
 * order (the first match names the rule), and no source.
 */
function policyVersion(
  allow: readonly IdentityPattern[] | undefined,
  mode: Mode,
  dryRun: boolean,
): string {
  const canonical = JSON.stringify({
    allow: allow === undefined ? null : allow.map((p) => p.canonical),
    mode,
    dryRun,
  });
  return createHash('sha256').update(canonical).digest('hex').slice(0, POLICY_VERSION_HEX_LENGTH);
}
