import { PalisadeError } from '../../certs/errors.js';

/** One bad setting: the flag or variable that carried it, and what is wrong. */
export interface ConfigProblem {
  setting: string;
  value: string;
  problem: string;
}

/** Raised once at start-up with every bad setting named (CONFIG_INVALID). */
export class ConfigError extends PalisadeError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super('CONFIG_INVALID', `invalid configuration: ${problems.map(describeProblem).join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Collects problems while a config is read, then throws them together. */
export class ProblemList {
  private readonly problems: ConfigProblem[] = [];

  /** Runs `parse`; a thrown error becomes a problem for `setting` and the result is undefined. */
  check<T>(setting: string, value: string | undefined, parse: (value: string) => T): T | undefined {
    if (value === undefined) return undefined;
    try {
      return parse(value);
    } catch (err) {
      this.add(setting, value, err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }

  add(setting: string, value: string, problem: string): void {
    this.problems.push({ setting, value, problem });
  }

  /** Throws ConfigError when any problem was found. */
  throwIfAny(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

function describeProblem(p: ConfigProblem): string {
  return `${p.setting}=${JSON.stringify(p.value)}: ${p.problem}`;
}
