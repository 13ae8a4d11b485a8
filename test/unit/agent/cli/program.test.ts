// The CLI loads only the command group its first word names, so a sidecar
// (`palisade agent`) or the init step does not carry the CA, its SQLite store
// or the Kubernetes code; help still lists every command.
import { execFileSync } from 'node:child_process';
import t from 'tap';

const PROGRAM_URL = new URL('../../../../agent/cli/program.ts', import.meta.url).href;

const EVERY_COMMAND = ['agent', 'ca', 'demo', 'init-iptables', 'inject', 'install', 'webhook'];

/** The argument lists built, in this order, in one fresh process. */
const ARGVS = [['init-iptables', '--help'], ['agent', '--help'], ['--help'], [], ['nonsense']];

/** What one fresh process registered for each of ARGVS, then for `ca status`. */
interface Built {
  commands: string[][];
  /** Whether SQLite was loaded once the init step's program was built (the first list). */
  isSqliteLoadedByInit: boolean;
  caCommands: string[];
  isSqliteLoadedByCa: boolean;
}

// One child process, since the TypeScript loader makes each slow to start;
// the init step's program is built first, so SQLite loaded by then is its.
const script = `
  import { createRequire } from 'node:module';
  const { buildProgram } = await import(${JSON.stringify(PROGRAM_URL)});
  const deps = {
    env: {},
    io: { out() {}, err() {} },
    version: '0.0.0',
    untilStopped: async () => undefined,
  };
  const cache = createRequire(process.cwd() + '/').cache;
  const isSqliteLoaded = () => Object.keys(cache).some((path) => path.includes('better-sqlite3'));
  const names = async (argv) => (await buildProgram(deps, argv)).commands.map((c) => c.name()).sort();
  const commands = [await names(${JSON.stringify(ARGVS[0])})];
  const isSqliteLoadedByInit = isSqliteLoaded();
  for (const argv of ${JSON.stringify(ARGVS.slice(1))}) commands.push(await names(argv));
  const caCommands = await names(['ca', 'status']);
  process.stdout.write(JSON.stringify({
    commands,
    isSqliteLoadedByInit,
    caCommands,
    isSqliteLoadedByCa: isSqliteLoaded(),
  }));`;
const built = JSON.parse(
  execFileSync(process.execPath, [...process.execArgv, '--input-type=module', '--eval', script], {
    encoding: 'utf8',
  }),
) as Built;

t.test('the init step and the agent load only their own command group', async (t) => {
  t.same(built.commands[0], ['init-iptables']);
  t.same(built.commands[1], ['agent', 'demo']);
});

t.test('help, no command or an unknown word list every command', async (t) => {
  for (const [i, argv] of ARGVS.entries()) {
    if (i < 2) continue;
    t.same(built.commands[i], EVERY_COMMAND, argv.join(' ') || '(no arguments)');
  }
});

t.test('the init step does not load the CA store; a CA command does', async (t) => {
  t.equal(built.isSqliteLoadedByInit, false, 'init-iptables leaves SQLite unloaded');
  t.same(built.caCommands, ['ca']);
  t.equal(built.isSqliteLoadedByCa, true, 'building `ca` loads SQLite');
});
