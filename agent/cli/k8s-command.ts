import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { PalisadeError, errorMessage } from '../../certs/errors.js';
import { formatHostPort, parseHostPort } from '../../certs/host-port.js';
import { LOG_LEVELS, createLogger, type LogLevel } from '../../certs/log.js';
import {
  DEFAULT_WEBHOOK_LISTEN,
  buildMeshSettings,
  createInstallMaterials,
  renderInstall,
  createWebhookServer,
  injectManifests,
  type MeshFlags,
  type MeshPolicyText,
} from '../k8s/index.js';
import type { CliDeps } from './program.js';

/** Reads all of stdin; injected by tests. */
export type StdinReader = () => string;

interface WebhookFlags extends MeshFlags {
  tlsCert: string;
  tlsKey: string;
  listen: string;
  logLevel: string;
}

/** Registers `palisade inject` and `palisade webhook` on the program. */
export function registerK8sCommands(
  program: Command,
  deps: CliDeps,
  readStdin: StdinReader = () => readFileSync(0, 'utf8'),
): void {
  withMeshPolicyFlag(withMeshFlags(program.command('inject')))
    .description(
      'add the init step and the agent to the Pods, Deployments, ' +
        'StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs of YAML ' +
        'manifests; other documents pass unchanged',
    )
    .option('-f, --filename <file>', 'manifest file, or - for stdin', '-')
    .addHelpText(
      'after',
      '\nExample: palisade inject -f app.yaml | kubectl apply -f -\nPods ' +
        'annotated palisade.dev/inject=disabled, hostNetwork pods and injected ' +
        'pods are left as they are.',
    )
    .action((flags: MeshFlags & { filename: string }) => {
      const settings = buildMeshSettings(flags, deps.version, readMeshPolicy(flags));
      const text = flags.filename === '-' ? readStdin() : readInput(flags.filename);
      const result = injectManifests(text, settings);
      deps.io.out(result.yaml);
      for (const line of result.summary) deps.io.err(`${line.name} ${line.outcome}\n`);
    });

  registerInstallCommand(program, deps);

  withMeshPolicyFlag(withMeshFlags(program.command('webhook')))
    .description(
      'serve the mutating admission webhook over HTTPS: POST /mutate, GET /healthz, GET /metrics',
    )
    .requiredOption('--tls-cert <file>', 'PEM certificate chain the webhook serves')
    .requiredOption('--tls-key <file>', 'PEM private key of that certificate')
    .option('--listen <host:port>', 'HTTPS listen address', DEFAULT_WEBHOOK_LISTEN)
    .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, 'info')
    .addHelpText(
      'after',
      '\nThe certificate is read once at start-up; restart the webhook to change it.',
    )
    .action(async (flags: WebhookFlags) => {
      const settings = buildMeshSettings(flags, deps.version, readMeshPolicy(flags));
      const problems: string[] = [];
      const listen = attempt(problems, '--listen', flags.listen, (v) =>
        parseHostPort(v, '0.0.0.0'),
      );
      if (!(LOG_LEVELS as readonly string[]).includes(flags.logLevel)) {
        problems.push(
          `--log-level=${JSON.stringify(flags.logLevel)}: must be one of ${LOG_LEVELS.join(', ')}`,
        );
      }
      const cert = attempt(problems, '--tls-cert', flags.tlsCert, readInput);
      const key = attempt(problems, '--tls-key', flags.tlsKey, readInput);
      if (problems.length > 0 || !listen || cert === undefined || key === undefined) {
        throw new PalisadeError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
      }
      const logger = createLogger({ component: 'webhook', level: flags.logLevel as LogLevel });
      const webhook = createWebhookServer({
        settings,
        tlsCertPem: cert,
        tlsKeyPem: key,
        registry: new Registry(),
        logger,
      });
      const address = await webhook.listen(listen);
      logger.info(
        { listen: formatHostPort({ host: address.address, port: address.port }) },
        'webhook listening',
      );
      await deps.untilStopped();
      await webhook.close();
      logger.info({}, 'webhook stopped');
    });
}

/** Registers `palisade install`. */
function registerInstallCommand(program: Command, deps: CliDeps): void {
  withMeshFlags(program.command('install'))
    .description(
      'write every manifest a cluster needs (CA, webhook, trust bundle) to stdout, with a fresh CA',
    )
    .option(
      '--mesh-namespace <ns...>',
      'namespaces to label for injection and give the trust bundle',
    )
    .addHelpText(
      'after',
      '\nExample: palisade install --trust-domain cluster.local | kubectl ' +
        'apply -f -\nEach run makes a new CA: keep the output, or its Secrets, ' +
        'to re-apply. Injected pods need the palisade-trust-bundle ConfigMap ' +
        'in their namespace (--mesh-namespace). The CA finds the cluster ' +
        'service-account keys by OIDC discovery (--sa-jwks kubernetes).',
    )
    .action((flags: MeshFlags & { meshNamespace?: string[] }) => {
      const settings = buildMeshSettings(flags, deps.version);
      const objects = renderInstall(
        settings,
        createInstallMaterials(settings.trustDomain),
        flags.meshNamespace ?? [],
      );
      deps.io.out(objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n'));
    });
}

/** Adds the flags that set the mesh settings. */
export function withMeshFlags(cmd: Command): Command {
  return cmd
    .option('--trust-domain <td>', 'trust domain (default cluster.local)')
    .option(
      '--ca-addr <host:port>',
      'CA address agents dial (default palisade-ca.palisade-system.svc:15112)',
    )
    .option(
      '--image <ref>',
      'image of the init step and agent (default ghcr.io/palisade/palisade:<version>)',
    )
    .option(
      '--mesh-cidrs <list>',
      'comma list of blocks dialled with mutual TLS (default the private IPv4 ranges)',
    )
    .option(
      '--default-mode <mode>',
      'inbound mode of pods without palisade.dev/mode: strict or permissive',
    );
}

/** Adds `--mesh-policy`, the mesh policy pods are checked against at injection. */
function withMeshPolicyFlag(cmd: Command): Command {
  return cmd.option(
    '--mesh-policy <file>',
    'mesh policy document (YAML or JSON, as for `palisade ca policy set`): ' +
      'pods asking palisade.dev/mode=permissive under a strict mesh are ' +
      'refused',
  );
}

/** The text of `--mesh-policy`, when given; FILE_UNREADABLE when it cannot be read. */
function readMeshPolicy(flags: MeshFlags): MeshPolicyText | undefined {
  if (flags.meshPolicy === undefined) return undefined;
  return { text: readInput(flags.meshPolicy), source: flags.meshPolicy };
}

function readInput(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PalisadeError('FILE_UNREADABLE', `cannot read ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

function attempt<T>(
  problems: string[],
  flag: string,
  value: string,
  parse: (v: string) => T,
): T | undefined {
  try {
    return parse(value);
  } catch (err) {
    problems.push(`${flag}=${JSON.stringify(value)}: ${errorMessage(err)}`);
    return undefined;
  }
}
