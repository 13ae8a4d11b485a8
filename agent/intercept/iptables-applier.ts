import { spawnSync } from 'node:child_process';
import { PalisadeError } from '../../certs/errors.js';
import { binaryFor, type IptablesStep } from './iptables-rules.js';

/** What running one iptables command produced. */
export interface CommandResult {
  /** Exit status; undefined when the binary could not be started. */
  status: number | undefined;
  stderr: string;
  /** The spawn error code (`ENOENT` for a missing binary). */
  spawnError?: string;
}

/** Runs `binary args...`; injected so tests need no root. */
export type CommandRunner = (binary: string, args: readonly string[]) => CommandResult;

/** Runs a command synchronously (iptables is quick and ordering matters). */
export const runCommand: CommandRunner = (binary, args) => {
  const result = spawnSync(binary, [...args], { encoding: 'utf8' });
  const spawnError = (result.error as NodeJS.ErrnoException | undefined)?.code;
  return {
    status: result.status ?? undefined,
    stderr: result.stderr ?? '',
    ...(spawnError ? { spawnError } : {}),
  };
};

/** Whether `binary` can be started at all (`--version` answers). */
export function hasBinary(binary: string, run: CommandRunner = runCommand): boolean {
  return run(binary, ['--version']).spawnError === undefined;
}

/**
 * Runs the steps in order. A step whose `unless` check succeeds is skipped;
 * a failing `mayFail` step is ignored. Throws IPTABLES_MISSING when the
 * binary is absent, IPTABLES_DENIED without the privilege (NET_ADMIN or
 * root), IPTABLES_FAILED for any other failure, naming the command.
 */
export function applySteps(steps: readonly IptablesStep[], run: CommandRunner = runCommand): void {
  for (const step of steps) {
    const binary = binaryFor(step.family);
    if (step.unless) {
      const check = run(binary, step.unless);
      assertStarted(binary, check);
      assertPermitted(binary, step.unless, check);
      if (check.status === 0) continue;
    }
    const result = run(binary, step.args);
    assertStarted(binary, result);
    assertPermitted(binary, step.args, result);
    if (result.status !== 0 && !step.mayFail) {
      throw new PalisadeError(
        'IPTABLES_FAILED',
        `${binary} ${step.args.join(' ')} failed (status ${result.status}): ${result.stderr.trim()}`,
      );
    }
  }
}

function assertStarted(binary: string, result: CommandResult): void {
  if (result.spawnError === 'ENOENT') {
    throw new PalisadeError('IPTABLES_MISSING', `${binary} is not installed or not on PATH`);
  }
  if (result.spawnError) {
    throw new PalisadeError('IPTABLES_FAILED', `cannot run ${binary}: ${result.spawnError}`);
  }
}

function assertPermitted(binary: string, args: readonly string[], result: CommandResult): void {
  if (result.status === 0) return;
  if (/permission denied|must be root|operation not permitted/i.test(result.stderr)) {
    throw new PalisadeError(
      'IPTABLES_DENIED',
      `${binary} ${args.join(' ')}: not permitted (run as root or with CAP_NET_ADMIN): ${result.stderr.trim()}`,
    );
  }
}
