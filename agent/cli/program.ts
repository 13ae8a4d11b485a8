import { Command, CommanderError } from 'commander';
import { errorCode, errorMessage } from '../../certs/errors.js';
import type { Env } from '../config/env-table.js';
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

/** Adds one command group's commands to the program. */
type RegisterGroup = (program: Command, deps: CliDeps) => void;

/** A command group: the top-level command names it registers, and how to load it. */
interface CommandGroup {
  names: readonly string[];
  load: () => Promise<RegisterGroup>;
}

/**
 * The command groups, by the top-level command names each registers, in help
 * order. Each is imported only when wanted, so `palisade agent` never loads
 * the CA, its SQLite store, the Kubernetes or the webhook code: a sidecar
 * starts sooner and stays smaller.
 */
const COMMAND_GROUPS: readonly CommandGroup[] = [
  {
    names: ['ca'],
    load: async () => (await import('./ca-command.js')).registerCaCommands,
  },
  {
    names: ['agent', 'demo'],
    load: async () => {
      const group = await import('./agent-command.js');
      return (program, deps) => {
        group.registerAgentCommand(program, deps);
        group.registerDemoCommand(program, deps);
      };
    },
  },
  {
    names: ['init-iptables'],
    load: async () => (await import('./intercept-command.js')).registerInterceptCommand,
  },
  {
    names: ['inject', 'webhook', 'install'],
    load: async () => (await import('./k8s-command.js')).registerK8sCommands,
  },
];

/**
 * Builds the `palisade` program. Given the arguments, only the command group
 * that their first word names is loaded; without one (help, version, an
 * unknown word) every group is, so help and errors list every command.
 */
export async function buildProgram(deps: CliDeps, argv: readonly string[] = []): Promise<Command> {
  const program = new Command('palisade')
    .description('Palisade: mutual-TLS service-mesh sidecar with a built-in certificate authority')
    .version(deps.version)
    .exitOverride()
    .configureOutput({ writeOut: deps.io.out, writeErr: deps.io.err })
    .showHelpAfterError(false);
  const first = argv[0];
  const named = COMMAND_GROUPS.filter(
    (group) => first !== undefined && group.names.includes(first),
  );
  const groups = named.length > 0 ? named : COMMAND_GROUPS;
  for (const register of await Promise.all(groups.map((group) => group.load()))) {
    register(program, deps);
  }
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
  const program = await buildProgram(deps, argv);
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
