import { invalidPolicy, readYamlValue } from '../../certs/policy/index.js';
import { checkHttpSection, type HttpSection } from './http-section.js';
import { checkWorkloadPolicy, type WorkloadPolicy } from './workload-policy.js';

/** Largest policy file accepted, in bytes. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;

const KNOWN_KEYS = new Set(['allow', 'mode', 'dryRun', 'http']);

/** A parsed policy file: the workload policy and the validated `http` section, if any. */
export interface PolicyDocument {
  readonly policy: WorkloadPolicy;
  /** Token settings and request rules; undefined when the file has no `http` section. */
  readonly http: HttpSection | undefined;
}

/**
 * Parses a policy file's text, YAML or JSON (JSON is YAML), into a workload
 * policy and its optional `http` section. The document must be a mapping of
 * `allow`, `mode`, `dryRun` and `http`; an empty document is refused rather
 * than read as "no allow list", so a file caught half-written never widens
 * access. Throws PolicyError
 * POLICY_INVALID naming every problem, `source` included.
 */
export function parsePolicyDocument(
  text: string,
  source: string,
  trustDomain: string,
): PolicyDocument {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_FILE_BYTES) {
    throw invalidPolicy(source, [`file is larger than ${MAX_POLICY_FILE_BYTES} bytes`]);
  }

  const value = readYamlValue(text, source);
  if (value === null || value === undefined) {
    throw invalidPolicy(source, ['document is empty (write {} for the mesh default)']);
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidPolicy(source, ['document must be a mapping of allow, mode, dryRun and http']);
  }

  const fields = value as Record<string, unknown>;
  const problems = Object.keys(fields)
    .filter((key) => !KNOWN_KEYS.has(key))
    .map((key) => `${key}: unknown key (known: ${[...KNOWN_KEYS].join(', ')})`);
  const result = checkWorkloadPolicy(
    { allow: fields['allow'], mode: fields['mode'], dryRun: fields['dryRun'], source },
    trustDomain,
  );
  if (!result.ok) problems.push(...result.problems);
  // A bad http section is refused like a bad allow list: the previous policy stays.
  const http =
    fields['http'] === undefined ? undefined : checkHttpSection(fields['http'], trustDomain);
  if (http !== undefined && !http.ok) problems.push(...http.problems);
  if (problems.length > 0 || !result.ok || (http !== undefined && !http.ok)) {
    throw invalidPolicy(source, problems);
  }
  return Object.freeze({ policy: result.policy, http: http?.section });
}
