import { PalisadeError } from '../errors.js';

/**
 * Stable codes of the policy module: `POLICY_INVALID` is a bad pattern, allow
 * list, mode, policy document or watcher option; `POLICY_UNREADABLE` a policy
 * file that could not be read; `POLICY_LAYERS_INCOMPLETE` a layer list where
 * no layer decided (a caller bug: the last layer must always decide).
 */
export type PolicyErrorCode = 'POLICY_INVALID' | 'POLICY_UNREADABLE' | 'POLICY_LAYERS_INCOMPLETE';

/** Raised by the policy module; `problems` names every defect found, one line each. */
export class PolicyError extends PalisadeError {
  declare readonly code: PolicyErrorCode;
  readonly problems: readonly string[];

  constructor(
    code: PolicyErrorCode,
    message: string,
    options?: { cause?: unknown; problems?: readonly string[] },
  ) {
    super(code, message, options);
    this.name = 'PolicyError';
    this.problems = Object.freeze([...(options?.problems ?? [message])]);
  }
}

/** Builds the one POLICY_INVALID error that lists every problem found in `source`. */
export function invalidPolicy(source: string, problems: readonly string[]): PolicyError {
  return new PolicyError('POLICY_INVALID', `invalid policy (${source}): ${problems.join('; ')}`, {
    problems,
  });
}
