import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { readCaConfig } from '../../certs/ca-dir.js';
import { parseDurationSeconds } from '../../certs/duration.js';
import { errorMessage, PalisadeError } from '../../certs/errors.js';
import { DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT } from '../../certs/events/index.js';
import {
  compilePattern,
  MAX_MESH_POLICY_BYTES,
  invalidPolicy,
  PolicyError,
} from '../../certs/policy/index.js';
import type * as pb from '../../proto/index.js';
import { loadCaCommonConfig } from '../config/ca-config.js';
import { withAdmin, type CommonFlags } from './ca-admin.js';
import type { CaCommandDeps } from './ca-command.js';
import { formatJson, formatTable, isoOf } from './output.js';
import {
  eventJsonLine,
  formatEventLine,
  formatPolicy,
  policyJson,
  summarisePolicy,
} from './policy-output.js';

/** Registers `palisade ca policy set|get|history` and `palisade ca events` under `ca`. */
export function registerCaPolicyCommands(
  ca: Command,
  deps: CaCommandDeps,
  withRemote: (cmd: Command) => Command,
): void {
  const { io } = deps;
  const policy = ca
    .command('policy')
    .description('the mesh policy every agent follows, pushed with the trust updates');
  withRemote(policy.command('set'))
    .description(
      'replace the mesh policy with a YAML or JSON document; a bad one is refused with ' +
        'every problem named and the policy in force stays',
    )
    .requiredOption('--file <file>', 'the policy document')
    .option('--json', 'print the stored version as JSON', false)
    .action(async (flags: CommonFlags & { file: string }) => {
      const document = readPolicyFile(flags.file);
      const { before, after } = await withAdmin(flags, deps.env, async (client) => ({
        before: await client.getPolicy(),
        after: await client.setPolicy({ document, source: flags.file }),
      }));
      if (flags.json) {
        io.out(formatJson(policyJson(after)));
      } else if (after.version === before.version) {
        io.out(`unchanged: mesh policy version ${after.version} already has this document\n`);
      } else {
        io.out(`mesh policy version ${after.version} set by ${after.setBy} from ${after.source}\n`);
      }
    });

  withRemote(policy.command('get'))
    .description('print the mesh policy in force: version, who set it when, the document')
    .option('--json', 'print as JSON', false)
    .action(async (flags: CommonFlags) => {
      const record = await withAdmin(flags, deps.env, (client) => client.getPolicy());
      io.out(flags.json ? formatJson(policyJson(record)) : formatPolicy(record));
    });

  withRemote(policy.command('history'))
    .description('list the stored versions of the mesh policy, newest first')
    .option('--limit <n>', 'at most this many versions (1 to 1000)', '20')
    .option('--json', 'print as JSON, with each document', false)
    .action(async (flags: CommonFlags & { limit: string }) => {
      const limit = parseCount(flags.limit, 1000);
      const { policies } = await withAdmin(flags, deps.env, (client) =>
        client.policyHistory({ limit }),
      );
      if (flags.json) {
        io.out(formatJson(policies.map(policyJson)));
        return;
      }
      io.out(
        formatTable(
          ['version', 'set at', 'set by', 'source', 'policy'],
          policies.map((p) => [
            String(p.version),
            isoOf(p.setUnixMs),
            p.setBy,
            p.source || '-',
            summarisePolicy(p.documentJson),
          ]),
        ),
      );
    });

  withRemote(ca.command('events'))
    .description(
      'the security events agents report (denials, rejected peers, handshake failures, ' +
        'rotations), one line each, oldest first; the CA keeps the newest 100,000',
    )
    .option('--follow', 'keep printing new events until SIGINT or SIGTERM', false)
    .option('--since <duration>', 'only events of the last DURATION (e.g. 10m, 2h)')
    .option(
      '--identity <pattern>',
      'only events whose reporter or peer matches, e.g. ns/shop/* or ns/shop/sa/web',
    )
    .option(
      '--limit <n>',
      `at most the newest N stored events (1 to ${MAX_EVENT_LIMIT})`,
      String(DEFAULT_EVENT_LIMIT),
    )
    .option('--json', 'one JSON object per line', false)
    .action(
      async (
        flags: CommonFlags & { follow: boolean; since?: string; identity?: string; limit: string },
      ) => {
        const limit = parseCount(flags.limit, MAX_EVENT_LIMIT);
        const sinceUnixMs = flags.since ? Date.now() - parseDurationSeconds(flags.since) * 1000 : 0;
        const { trustDomain } = readCaConfig(loadCaCommonConfig(flags, deps.env).dir);
        // A bad pattern is refused here with the CA's own words, before any call.
        if (flags.identity) compilePattern(flags.identity, trustDomain);
        const request = { sinceUnixMs, identityPattern: flags.identity ?? '', limit, afterId: 0 };
        const print = (event: pb.StoredEventMessage) =>
          io.out(flags.json ? eventJsonLine(event) : formatEventLine(event));
        await withAdmin(flags, deps.env, async (client) => {
          if (!flags.follow) {
            (await client.listEvents(request)).events.forEach(print);
            return;
          }
          await new Promise<void>((resolve, reject) => {
            const cancel = client.watchEvents(request, print, (err) =>
              err ? reject(err) : resolve(),
            );
            deps.untilStopped().then(() => {
              cancel();
              resolve();
            }, reject);
          });
        });
      },
    );
}

/**
 * Reads a mesh policy document for `ca policy set`: POLICY_UNREADABLE when
 * the file cannot be read, POLICY_INVALID when it is larger than any the CA
 * takes (so the refusal names the file rather than a gRPC size limit).
 */
function readPolicyFile(file: string): string {
  try {
    if (statSync(file).size > MAX_MESH_POLICY_BYTES) {
      throw invalidPolicy(file, [`document is larger than ${MAX_MESH_POLICY_BYTES} bytes`]);
    }
    return readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    throw new PolicyError('POLICY_UNREADABLE', `cannot read ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/** Parses a `--limit` value: a whole number from 1 to `max`; USAGE otherwise. */
function parseCount(text: string, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > max) {
    throw new PalisadeError(
      'USAGE',
      `--limit must be a whole number from 1 to ${max}, got ${text}`,
    );
  }
  return value;
}
