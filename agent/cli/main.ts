#!/usr/bin/env node
// Entry point of the `palisade` binary: wires the process (argv, env, stdio,
// signals) into the CLI and exits with its status.
import { packageVersion, processIo } from './output.js';
import { runCli } from './program.js';

const untilStopped = () =>
  new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });

const status = await runCli(process.argv.slice(2), {
  env: process.env,
  io: processIo,
  version: packageVersion(),
  untilStopped,
});
process.exitCode = status;
