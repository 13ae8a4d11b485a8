import { Command, CommanderError } from 'commander';
import { errorCode, errorMessage } from '../../certs/errors.js';
import type { Env } from '../config/env-table.js';
import { registerAgentCommand, registerDemoCommand } from './agent-command.js';
import { registerCaCommands } from './ca-command.js';
import { registerInterceptCommand } from './intercept-command.js';
import { registerK8sCommands } from './k8s-command.js';
import type { Io } from './output.js';

/** Exit status for usage and configuration errors. */
export const EXIT_USAGE = 2;

/** Exit status for every other failure. */
export const EXIT_FAILURE = 1;

/** What a CLI run needs from its process; tests pass their own. */
export interface CliDeps {
  env: Env;
  io: Io;
  version: string;
  untilStopped: () => Promise<void>;
}

/** Builds the `palisade` program with every command group. */
export function buildProgram(deps: CliDeps): Command {
  const program = new Command('palisade')
    .description('Palisade: mutual-TLS service-mesh sidecar with a built-in certificate authority')
    .version(deps.version)
    .exitOverride()
    .configureOutput({ writeOut: deps.io.out, writeErr: deps.io.err })
    .showHelpAfterError(false);
  registerCaCommands(program, deps);
  registerAgentCommand(program, deps);
  registerDemoCommand(program, deps);
  registerInterceptCommand(program, deps);
  registerK8sCommands(program, deps);
  for (const cmd of allCommands(program)) {
    cmd.exitOverride().configureOutput({ writeOut: deps.io.out, writeErr: deps.io.err });
  }
  return program;
}

/**
 * Runs the CLI on `argv` (without node and script) and returns the exit
 * status. Errors print as one line on stderr: `palisade: CODE: message`.
 */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its own message (or help/version, exit 0).
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const code = errorCode(err);
    deps.io.err(`palisade: ${code}: ${errorMessage(err)}\n`);
    return code === 'CONFIG_INVALID' || code === 'USAGE' || code.endsWith('_INVALID')
      ? EXIT_USAGE
      : EXIT_FAILURE;
  }
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((child) => [child, ...allCommands(child)]);
}
