import { formatDurationSeconds, parseDurationSeconds } from '../duration.js';
import { errorMessage } from '../errors.js';
import { describeValue } from './describe-value.js';
import { compilePattern, type IdentityPattern } from './identity-pattern.js';

/** Inbound modes: `strict` accepts only mTLS, `permissive` also plaintext (for migrations). */
export const MODES = ['strict', 'permissive'] as const;

/** An inbound mode; see MODES. */
export type Mode = (typeof MODES)[number];

/**
 * What a workload without an allow list admits under the mesh policy: nobody,
 * peers of its own namespace, or any peer of the trust domain.
 */
export const MESH_DEFAULTS = ['deny', 'same-namespace', 'mesh'] as const;

/** A mesh default; see MESH_DEFAULTS. */
export type MeshDefault = (typeof MESH_DEFAULTS)[number];

/** Largest mesh policy document accepted, in bytes. */
export const MAX_MESH_POLICY_BYTES = 256 * 1024;

/** Most deny rules one mesh policy may hold. */
export const MAX_MESH_DENY_RULES = 1000;

/** One mesh-wide deny rule: callers matching `from` (and no `except`) may not call `to`. */
export interface MeshDenyRule {
  /** Position in the document's `deny` list, as `/why` and logs name it (`deny[0]`). */
  readonly index: number;
  readonly from: IdentityPattern;
  readonly to: IdentityPattern;
  /** Callers exempted from the rule even though `from` matches them. */
  readonly except: readonly IdentityPattern[];
  /** The rule as written, for explanations: `deny[0] {from: "*", to: "ns/payments/*", ...}`. */
  readonly text: string;
}

/** The mesh policy document in its canonical, transportable form (JSON). */
export interface MeshPolicyDocument {
  mode: Mode;
  default: MeshDefault;
  deny: { from: string; to: string; except: string[] }[];
  /** Longest certificate lifetime allowed, as a duration (`24h`); null for the CA's own limit. */
  maxCertTtl: string | null;
}

/** A validated mesh policy, compiled for one trust domain; immutable. */
export interface MeshPolicy {
  /** The minimum mode: `strict` binds every workload, `permissive` lets each choose. */
  readonly mode: Mode;
  /** What a workload without an allow list admits. */
  readonly default: MeshDefault;
  readonly deny: readonly MeshDenyRule[];
  /** Longest certificate lifetime the CA may issue, in seconds; undefined for no mesh limit. */
  readonly maxCertTtlSeconds: number | undefined;
  /** The canonical document; `JSON.stringify` of it is what the CA stores and pushes. */
  readonly document: Readonly<MeshPolicyDocument>;
}

/** Either a compiled mesh policy or every problem that kept it from being built. */
export type MeshPolicyResult = { ok: true; policy: MeshPolicy } | { ok: false; problems: string[] };

/**
 * The policy in force before an operator sets one: it constrains nothing that
 * Palisade did not already enforce (workloads choose their mode, peers of the
 * trust domain are admitted without an allow list, no deny rules).
 */
export const OPEN_MESH_DOCUMENT: Readonly<MeshPolicyDocument> = Object.freeze({
  mode: 'permissive',
  default: 'mesh',
  deny: [],
  maxCertTtl: null,
});

const KNOWN_KEYS = ['mode', 'default', 'deny', 'maxCertTtl'];
const RULE_KEYS = ['from', 'to', 'except'];

/**
 * Validates and compiles a mesh policy document already parsed into a value
 * (the operator's YAML, or the canonical JSON the CA pushes). Omitted keys
 * take the open policy's values. Every problem is named, one line each.
 */
export function checkMeshPolicy(value: unknown, trustDomain: string): MeshPolicyResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problems: [`document must be a mapping of ${KNOWN_KEYS.join(', ')}`] };
  }
  const fields = value as Record<string, unknown>;
  const problems = Object.keys(fields)
    .filter((key) => !KNOWN_KEYS.includes(key))
    .map((key) => `${key}: unknown key (known: ${KNOWN_KEYS.join(', ')})`);

  const mode = oneOf(fields['mode'], MODES, OPEN_MESH_DOCUMENT.mode, 'mode', problems);
  const meshDefault = oneOf(
    fields['default'],
    MESH_DEFAULTS,
    OPEN_MESH_DOCUMENT.default,
    'default',
    problems,
  );
  const deny = checkDenyRules(fields['deny'], trustDomain, problems);

  let maxCertTtlSeconds: number | undefined;
  const ttl = fields['maxCertTtl'];
  if (ttl !== undefined && ttl !== null) {
    try {
      maxCertTtlSeconds = parseDurationSeconds(String(ttl));
      if (maxCertTtlSeconds < 1)
        problems.push(`maxCertTtl: ${describeValue(ttl)}: must be positive`);
    } catch (err) {
      problems.push(`maxCertTtl: ${errorMessage(err)}`);
    }
  }

  if (problems.length > 0) return { ok: false, problems };
  const document: MeshPolicyDocument = {
    mode,
    default: meshDefault,
    deny: deny.map((rule) => ({
      from: rule.from.text,
      to: rule.to.text,
      except: rule.except.map((p) => p.text),
    })),
    maxCertTtl: maxCertTtlSeconds === undefined ? null : formatDurationSeconds(maxCertTtlSeconds),
  };
  const policy: MeshPolicy = Object.freeze({
    mode,
    default: meshDefault,
    deny: Object.freeze(deny),
    maxCertTtlSeconds,
    document: Object.freeze(document),
  });
  return { ok: true, policy };
}

/**
 * Returns the first deny rule that forbids `callerId` from calling `calleeId`,
 * or undefined when no rule does. Both IDs are verified SPIFFE IDs.
 */
export function findMeshDeny(
  policy: MeshPolicy,
  callerId: string,
  calleeId: string,
): MeshDenyRule | undefined {
  for (const rule of policy.deny) {
    if (!rule.to.matches(calleeId) || !rule.from.matches(callerId)) continue;
    if (rule.except.some((pattern) => pattern.matches(callerId))) continue;
    return rule;
  }
  return undefined;
}

function checkDenyRules(value: unknown, trustDomain: string, problems: string[]): MeshDenyRule[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.push('deny: must be a list of {from, to, except} rules');
    return [];
  }
  if (value.length > MAX_MESH_DENY_RULES) {
    problems.push(`deny: ${value.length} rules, at most ${MAX_MESH_DENY_RULES} allowed`);
    return [];
  }
  const rules: MeshDenyRule[] = [];
  value.forEach((entry: unknown, index) => {
    const where = `deny[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(
        `${where}: must be a mapping of from, to and except, not ${describeValue(entry)}`,
      );
      return;
    }
    const fields = entry as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (!RULE_KEYS.includes(key)) {
        problems.push(`${where}.${key}: unknown key (known: ${RULE_KEYS.join(', ')})`);
      }
    }
    const before = problems.length;
    const from = pattern(fields['from'], `${where}.from`, trustDomain, problems);
    const to = pattern(fields['to'], `${where}.to`, trustDomain, problems);
    const except: IdentityPattern[] = [];
    const rawExcept = fields['except'];
    if (rawExcept !== undefined && rawExcept !== null) {
      if (!Array.isArray(rawExcept)) {
        problems.push(`${where}.except: must be a list of patterns`);
      } else {
        rawExcept.forEach((text: unknown, i) => {
          const compiled = pattern(text, `${where}.except[${i}]`, trustDomain, problems);
          if (compiled) except.push(compiled);
        });
      }
    }
    if (problems.length > before || !from || !to) return;
    const exceptText =
      except.length === 0 ? '' : `, except: ${JSON.stringify(except.map((p) => p.text))}`;
    rules.push(
      Object.freeze({
        index,
        from,
        to,
        except: Object.freeze(except),
        text:
          `${where} {from: ${JSON.stringify(from.text)}, ` +
          `to: ${JSON.stringify(to.text)}${exceptText}}`,
      }),
    );
  });
  return rules;
}

function pattern(
  text: unknown,
  where: string,
  trustDomain: string,
  problems: string[],
): IdentityPattern | undefined {
  if (typeof text !== 'string') {
    problems.push(`${where}: must be a pattern string, not ${describeValue(text)}`);
    return undefined;
  }
  try {
    return compilePattern(text, trustDomain);
  } catch (err) {
    problems.push(`${where}: ${errorMessage(err)}`);
    return undefined;
  }
}

function oneOf<T extends string>(
  value: unknown,
  choices: readonly T[],
  fallback: T,
  key: string,
  problems: string[],
): T {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value))
    return value as T;
  problems.push(`${key}: ${describeValue(value)}: must be one of ${choices.join(', ')}`);
  return fallback;
}
