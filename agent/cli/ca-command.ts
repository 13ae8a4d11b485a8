import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { Registry } from 'prom-client';
import { startCa } from '../../certs/ca.js';
import { initCaDir, writePublic, writeSecret } from '../../certs/ca-dir.js';
import { parseDurationSeconds } from '../../certs/duration.js';
import { PalisadeError } from '../../certs/errors.js';
import { createLogger } from '../../certs/log.js';
import { parseSpiffeId } from '../../certs/spiffe-id.js';
import { CaStore } from '../../certs/store/index.js';
import { createCsr, generateKeyPair, KEY_TYPES, type KeyType } from '../../certs/x509/index.js';
import { loadCaCommonConfig, loadCaServeConfig, DEFAULT_CA_ADDR } from '../config/ca-config.js';
import type { Env } from '../config/env-table.js';
import { withAdmin, type CommonFlags } from './ca-admin.js';
import { registerCaPolicyCommands } from './ca-policy-command.js';
import { formatJson, formatTable, isoOf, type Io } from './output.js';

/** What the `ca` commands need from the process: injected for tests. */
export interface CaCommandDeps {
  env: Env;
  io: Io;
  version: string;
  /** Resolves when the serving CA should stop (signals, in the real process). */
  untilStopped: () => Promise<void>;
}

/** Registers `palisade ca ...` on the program. */
export function registerCaCommands(program: Command, deps: CaCommandDeps): void {
  const { io } = deps;
  const ca = program
    .command('ca')
    .description(
      'operate the certificate authority: init, serve, issue, revoke, tokens, CRL, audit, ' +
        'mesh policy, security events',
    );

  const withDir = (cmd: Command) =>
    cmd.option('--dir <dir>', 'CA directory (env PALISADE_CA_DIR)', undefined);
  const withRemote = (cmd: Command) =>
    withDir(cmd).option(
      '--ca-addr <host:port>',
      `CA gRPC address (env PALISADE_CA_ADDR, default ${DEFAULT_CA_ADDR})`,
    );

  withDir(ca.command('init'))
    .description(
      'create a root, an intermediate, a trust bundle, the store and an admin certificate',
    )
    .requiredOption('--trust-domain <td>', 'trust domain, e.g. cluster.local')
    .addOption(
      new Option('--key-type <type>', 'key type of the CA keys')
        .choices([...KEY_TYPES])
        .default('ecdsa-p256'),
    )
    .option(
      '--passphrase-file <file>',
      'file holding the key passphrase (default: generate <dir>/passphrase)',
    )
    .option('--force', 'replace an existing CA in the directory', false)
    .action((flags: CommonFlags & { trustDomain: string; keyType: KeyType; force: boolean }) => {
      const common = loadCaCommonConfig(flags, deps.env);
      const result = initCaDir({
        dir: common.dir,
        trustDomain: flags.trustDomain,
        keyType: flags.keyType,
        force: flags.force,
        passphrase: common.passphrase,
      });
      io.out(
        formatTable(
          ['what', 'value'],
          [
            ['dir', result.dir],
            ['trust domain', result.trustDomain],
            ['root serial', result.rootSerial],
            ['intermediate serial', result.intermediateSerial],
            ['admin identity', result.adminId],
            ['admin certificate', join(result.dir, 'admin', 'cert.pem')],
          ],
        ),
      );
    });

  withDir(ca.command('serve'))
    .description('serve the workload and admin gRPC APIs until SIGTERM')
    .option(
      '--listen <host:port>',
      'gRPC listen address (env PALISADE_CA_LISTEN, default 0.0.0.0:15112)',
    )
    .option(
      '--metrics-listen <host:port>',
      'HTTP address for /metrics, /healthz, /readyz (env PALISADE_CA_METRICS_LISTEN)',
    )
    .option('--default-ttl <duration>', 'certificate lifetime when none is asked (default 1h)')
    .option('--max-ttl <duration>', 'longest certificate lifetime (default 24h)')
    .option('--min-ttl <duration>', 'shortest certificate lifetime (default 1m, at least 5s)')
    .option(
      '--sign-workers <n>',
      'worker threads that parse CSRs and sign; 0 signs on the main thread (default 1)',
    )
    .option(
      '--sa-jwks <file|url|kubernetes>',
      'keys of the Kubernetes service-account issuer: a JWKS file, an http(s) URL, or ' +
        '"kubernetes" to discover them from the API server with the pod\'s own token ' +
        '(refetched every 10m and on an unknown key id, at most every 30s) ' +
        '(env PALISADE_CA_SA_JWKS)',
    )
    .option(
      '--sa-issuer <iss>',
      'issuer (iss) of service-account tokens; with --sa-jwks kubernetes, default: the one ' +
        'the API server announces (env PALISADE_CA_SA_ISSUER)',
    )
    .option(
      '--passphrase-file <file>',
      'file holding the key passphrase (env PALISADE_CA_PASSPHRASE_FILE or PALISADE_CA_PASSPHRASE)',
    )
    .option('--log-level <level>', 'log level (env PALISADE_LOG_LEVEL)')
    .action(async (flags: CommonFlags & Record<string, string>) => {
      const config = loadCaServeConfig(flags, deps.env);
      const log = createLogger({ component: 'ca', level: config.logLevel });
      const running = await startCa(config, {
        log,
        registry: new Registry(),
        version: deps.version,
      });
      await deps.untilStopped();
      await running.stop();
      log.flush();
    });

  withRemote(ca.command('issue'))
    .description(
      'make a key here, have the CA sign it, write key.pem (0600), cert.pem and bundle.pem',
    )
    .requiredOption('--id <spiffe-id>', 'identity of the certificate')
    .requiredOption('--out <dir>', 'output directory')
    .option('--ttl <duration>', 'lifetime (clamped by the CA)', '1h')
    .addOption(
      new Option('--key-type <type>', 'key type').choices([...KEY_TYPES]).default('ecdsa-p256'),
    )
    .option('--json', 'print the result as JSON', false)
    .action(
      async (flags: CommonFlags & { id: string; out: string; ttl: string; keyType: KeyType }) => {
        const spiffeId = parseSpiffeId(flags.id).uri;
        const ttlSeconds = parseDurationSeconds(flags.ttl);
        const key = await generateKeyPair(flags.keyType);
        const signed = await withAdmin(flags, deps.env, (client) =>
          client.issue({ spiffeId, csrPem: createCsr({ key, spiffeId }), ttlSeconds }),
        );
        mkdirSync(flags.out, { recursive: true });
        writeSecret(
          join(flags.out, 'key.pem'),
          key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        );
        writePublic(join(flags.out, 'cert.pem'), signed.certChainPem.join(''));
        writePublic(join(flags.out, 'bundle.pem'), signed.trustBundlePem.join(''));
        const summary = {
          spiffeId: signed.spiffeId,
          serial: signed.serial,
          notAfter: isoOf(signed.notAfterUnixMs),
          out: flags.out,
        };
        io.out(
          flags.json
            ? formatJson(summary)
            : `issued ${summary.serial} for ${summary.spiffeId}, ` +
                `expires ${summary.notAfter}, in ${summary.out}\n`,
        );
      },
    );

  withRemote(ca.command('revoke'))
    .description('revoke one certificate (--serial) or every certificate of an identity (--id)')
    .option('--serial <hex>', 'serial number of the certificate')
    .option(
      '--id <spiffe-id>',
      'identity to revoke as a whole; new certificates are refused until `ca unrevoke`',
    )
    .option(
      '--reason <text>',
      'reason (key-compromise, superseded, decommissioned, ... or free text)',
      'unspecified',
    )
    .option('--json', 'print the result as JSON', false)
    .action(async (flags: CommonFlags & { serial?: string; id?: string; reason: string }) => {
      if (Boolean(flags.serial) === Boolean(flags.id)) {
        throw new PalisadeError('USAGE', 'give exactly one of --serial or --id');
      }
      const result = await withAdmin(flags, deps.env, (client) =>
        client.revoke(
          flags.serial
            ? { serial: flags.serial, reason: flags.reason }
            : { spiffeId: flags.id as string, reason: flags.reason },
        ),
      );
      io.out(
        flags.json
          ? formatJson(result)
          : `${result.alreadyRevoked ? 'already revoked' : 'revoked'}: ${result.spiffeId} ` +
              `(${result.serials.length} certificate(s)), trust version ${result.trustVersion}\n`,
      );
    });

  withRemote(ca.command('unrevoke'))
    .description('lift an identity revocation so the identity may get certificates again')
    .requiredOption('--id <spiffe-id>', 'identity')
    .action(async (flags: CommonFlags & { id: string }) => {
      const result = await withAdmin(flags, deps.env, (client) =>
        client.unrevoke({ spiffeId: flags.id }),
      );
      io.out(
        result.wasRevoked ? `lifted revocation of ${flags.id}\n` : `${flags.id} was not revoked\n`,
      );
    });

  withRemote(ca.command('list'))
    .description('list issued certificates (unexpired by default) or revocations')
    .option('--revoked', 'list revocations only', false)
    .option('--all', 'include expired certificates', false)
    .option('--id <spiffe-id>', 'only this identity')
    .option('--limit <n>', 'at most this many certificates', '1000')
    .option('--json', 'print as JSON', false)
    .action(
      async (
        flags: CommonFlags & { revoked: boolean; all: boolean; id?: string; limit: string },
      ) => {
        const listed = await withAdmin(flags, deps.env, (client) =>
          client.list({
            revokedOnly: flags.revoked,
            includeExpired: flags.all,
            spiffeId: flags.id ?? '',
            limit: Number(flags.limit) || 1000,
          }),
        );
        if (flags.json) {
          io.out(formatJson(listed));
          return;
        }
        if (flags.revoked) {
          io.out(
            formatTable(
              ['kind', 'serial', 'spiffe id', 'reason', 'revoked at'],
              [
                ...listed.revokedIds.map((r) => [
                  'identity',
                  '-',
                  r.spiffeId,
                  r.reason,
                  isoOf(r.revokedUnixMs),
                ]),
                ...listed.revokedSerials.map((r) => [
                  'serial',
                  r.serial,
                  r.spiffeId,
                  r.reason,
                  isoOf(r.revokedUnixMs),
                ]),
              ],
            ),
          );
          return;
        }
        io.out(
          formatTable(
            ['serial', 'spiffe id', 'not after', 'via', 'revoked'],
            listed.certificates.map((c) => [
              c.serial,
              c.spiffeId,
              isoOf(c.notAfterUnixMs),
              c.issuedVia,
              c.revoked ? 'yes' : 'no',
            ]),
          ),
        );
      },
    );

  const token = ca
    .command('token')
    .description('one-time join tokens for workloads outside Kubernetes');
  withRemote(token.command('create'))
    .description('create a single-use join token for an identity; prints the token')
    .requiredOption('--id <spiffe-id>', 'identity the token entitles')
    .option('--ttl <duration>', 'how long the token stays usable', '10m')
    .option('--json', 'print as JSON', false)
    .action(async (flags: CommonFlags & { id: string; ttl: string }) => {
      const ttlSeconds = parseDurationSeconds(flags.ttl);
      const created = await withAdmin(flags, deps.env, (client) =>
        client.createJoinToken({ spiffeId: flags.id, ttlSeconds }),
      );
      io.out(
        flags.json
          ? formatJson({ ...created, expiresAt: isoOf(created.expiresUnixMs) })
          : `${created.token}\n`,
      );
    });

  withRemote(ca.command('crl'))
    .description('fetch the current signed CRL (PEM) of the signing intermediate')
    .option('--out <file>', 'write to a file instead of stdout')
    .action(async (flags: CommonFlags & { out?: string }) => {
      const crl = await withAdmin(flags, deps.env, (client) => client.getCrl());
      if (flags.out) {
        writePublic(flags.out, crl.crlPem);
        io.out(`wrote CRL number ${crl.crlNumber} to ${flags.out}\n`);
      } else {
        io.out(crl.crlPem);
      }
    });

  withRemote(ca.command('rotate-intermediate'))
    .description(
      'make a new intermediate with the root key (which must be in the CA dir) and sign with it',
    )
    .option('--ttl <duration>', 'lifetime of the new intermediate', '365d')
    .action(async (flags: CommonFlags & { ttl: string }) => {
      const ttlSeconds = parseDurationSeconds(flags.ttl);
      const rotated = await withAdmin(flags, deps.env, (client) =>
        client.rotateIntermediate({ ttlSeconds }),
      );
      io.out(
        `rotated intermediate ${rotated.oldSerial} -> ${rotated.newSerial}, ` +
          `expires ${isoOf(rotated.notAfterUnixMs)}\n`,
      );
    });

  withRemote(ca.command('status'))
    .description('report the CA: trust domain, root and intermediate expiry, counts, watchers')
    .option('--json', 'print as JSON', false)
    .action(async (flags: CommonFlags) => {
      const status = await withAdmin(flags, deps.env, (client) => client.status());
      if (flags.json) {
        io.out(formatJson(status));
        return;
      }
      io.out(
        formatTable(
          ['what', 'value'],
          [
            ['trust domain', status.trustDomain],
            ['version', status.version],
            ['started', isoOf(status.startedUnixMs)],
            ['key type', status.keyType],
            ['root', `${status.rootSerial} until ${isoOf(status.rootNotAfterUnixMs)}`],
            ['root key on host', status.rootKeyPresent ? 'yes' : 'no'],
            [
              'intermediate',
              `${status.intermediateSerial} until ${isoOf(status.intermediateNotAfterUnixMs)}`,
            ],
            ['trust version', String(status.trustVersion)],
            ['watchers', String(status.watchers)],
            [
              'certificates',
              `${status.certificatesActive} active, ${status.certificatesRevoked} revoked, ` +
                `${status.certificatesTotal} issued`,
            ],
            ['revoked identities', String(status.revokedIds)],
            ['ttl', `default ${status.defaultTtlSeconds}s, max ${status.maxTtlSeconds}s`],
          ],
        ),
      );
    });

  registerCaPolicyCommands(ca, deps, withRemote);

  const audit = ca
    .command('audit')
    .description('the hash-chained audit log of issuances and revocations');
  withDir(audit.command('verify'))
    .description('recompute the audit hash chain and report the first broken record')
    .option('--json', 'print as JSON', false)
    .action((flags: CommonFlags) => {
      const common = loadCaCommonConfig(flags, deps.env);
      const store = CaStore.open(join(common.dir, 'ca.db'));
      try {
        const verdict = store.verifyAudit();
        if (flags.json) io.out(formatJson(verdict));
        if (!verdict.ok) {
          throw new PalisadeError(
            'AUDIT_BROKEN',
            `audit chain broken at record ${verdict.brokenSeq}: ${verdict.reason} ` +
              `(${verdict.count} records checked)`,
          );
        }
        if (!flags.json)
          io.out(`audit chain intact: ${verdict.count} records, head ${verdict.headHash}\n`);
      } finally {
        store.close();
      }
    });
}
