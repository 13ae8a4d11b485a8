import { Command, Option } from 'commander';
import { Registry } from 'prom-client';
import { createLogger } from '../../certs/log.js';
import { KEY_TYPES } from '../../certs/x509/index.js';
import { PalisadeError } from '../../certs/errors.js';
import { startAgent } from '../app.js';
import { EventQueue } from '../events/index.js';
import { loadAgentConfig, type AgentFlags } from '../config/agent-config.js';
import type { CliDeps } from './program.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Registers `palisade agent` on the program. */
export function registerAgentCommand(program: Command, deps: CliDeps): void {
  program
    .command('agent')
    .description(
      'run the sidecar: mutual TLS inbound to --app-addr, explicit upstreams ' +
        'or transparent interception outbound, allow lists, live revocation',
    )
    .option('--ca-addr <host:port>', 'CA gRPC address (PALISADE_CA_ADDR, default 127.0.0.1:15112)')
    .option('--ca-bundle <file>', 'trust bundle PEM used to recognise the CA (PALISADE_CA_BUNDLE)')
    .option(
      '--token-file <file>',
      'projected service-account token, re-read at each use (PALISADE_TOKEN_FILE)',
    )
    .option(
      '--join-token <token>',
      'one-time join token from `palisade ca token create` (PALISADE_JOIN_TOKEN)',
    )
    .option('--id <spiffe-id>', 'identity to request; required with --join-token (PALISADE_ID)')
    .option(
      '--trust-domain <td>',
      'trust domain (PALISADE_TRUST_DOMAIN; default from --id or the bundle)',
    )
    .option(
      '--app-addr <host:port>',
      'the application, on localhost (PALISADE_APP_ADDR); optional with ' +
        'interception, where the original destination port names it',
    )
    .option(
      '--inbound-listen <host:port>',
      'mutual-TLS inbound port (PALISADE_INBOUND_LISTEN, default 0.0.0.0:15106)',
    )
    .option(
      '--inbound-handshake-timeout <duration>',
      'drop connections idle before the handshake ends (default 10s)',
    )
    .option('--inbound-max-connections <n>', 'most concurrent inbound connections (default 10000)')
    .option(
      '--admin-listen <host:port>',
      'admin HTTP (PALISADE_ADMIN_LISTEN, default 127.0.0.1:15120)',
    )
    .option(
      '--allow <pattern>',
      'allowed peer: SPIFFE ID or ns/NS/sa/SA, ns/NS/sa/*, ns/NS/*, * ' +
        '(repeatable; PALISADE_ALLOW comma list)',
      collect,
    )
    .option(
      '--policy-file <file>',
      'watched YAML/JSON policy file, instead of --allow (PALISADE_POLICY_FILE)',
    )
    .addOption(
      new Option(
        '--mode <mode>',
        'strict: mTLS only; permissive: also plaintext (PALISADE_MODE)',
      ).choices(['strict', 'permissive']),
    )
    .option(
      '--dry-run-policy',
      'log and count what the policy would deny, deny nothing (PALISADE_DRY_RUN_POLICY)',
    )
    .option(
      '--upstream <spec>',
      'LOCALPORT=HOST:PORT[@SPIFFE_ID] (repeatable; PALISADE_UPSTREAMS comma list)',
      collect,
    )
    .option(
      '--outbound-listen <host:port>',
      'transparent outbound port that iptables redirects to ' +
        '(PALISADE_OUTBOUND_LISTEN, default 127.0.0.1:15101); turns ' +
        'interception on',
    )
    .option(
      '--mesh-cidrs <list>',
      'comma list of blocks dialled with mutual TLS when intercepted ' +
        '(PALISADE_MESH_CIDRS); turns interception on',
      (value: string, previous: string[] = []) => [
        ...previous,
        ...value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ],
    )
    .addOption(
      new Option(
        '--outbound-external <policy>',
        'intercepted destinations outside --mesh-cidrs: pass as plain TCP or ' +
          'refuse (PALISADE_OUTBOUND_EXTERNAL, default pass)',
      ).choices(['pass', 'refuse']),
    )
    .option(
      '--jwt-issuer <iss>',
      'HTTP mode without a policy file: the exact iss access tokens must ' +
        'carry (PALISADE_JWT_ISSUER)',
    )
    .option(
      '--jwt-audience <list>',
      'comma list of accepted token audiences (PALISADE_JWT_AUDIENCE)',
    )
    .option(
      '--jwt-jwks <file|url>',
      "the token issuer's keys: a JWKS file or http(s) URL (PALISADE_JWT_JWKS)",
    )
    .option(
      '--http-rules <json>',
      "request rules as a JSON array in the policy file's http.rules shape; " +
        'turns HTTP mode on (PALISADE_HTTP_RULES)',
    )
    .option(
      '--http-ports <list>',
      'comma list of application ports in HTTP mode, the others spliced raw ' +
        '(PALISADE_HTTP_PORTS, default every port)',
    )
    .option('--cert-ttl <duration>', 'certificate lifetime to ask the CA for (PALISADE_CERT_TTL)')
    .addOption(
      new Option('--key-type <type>', 'workload key type (PALISADE_KEY_TYPE)').choices([
        ...KEY_TYPES,
      ]),
    )
    .option(
      '--drain-timeout <duration>',
      'grace period for live connections on SIGTERM (default 15s)',
    )
    .option(
      '--events-queue-size <n>',
      'security events held for the CA while it is slow or down, newer ones ' +
        'dropped and counted; 0 sends none (PALISADE_EVENTS_QUEUE_SIZE, ' +
        'default 1000)',
    )
    .addOption(
      new Option(
        '--peer-mux <mode>',
        'carry connections to a peer as streams over one mutual-TLS session, ' +
          'when the peer offers it (PALISADE_PEER_MUX, default on)',
      ).choices(['on', 'off']),
    )
    .option('--log-level <level>', 'log level (PALISADE_LOG_LEVEL)')
    .addHelpText(
      'after',
      '\nPolicy precedence (fixed): the mesh policy the CA pushes comes ' +
        'first. A mesh deny rule refuses its callers whatever the allow list ' +
        'says; then the allow list (--allow, --policy-file), when given, ' +
        'decides; without one the mesh default decides (deny: nobody, ' +
        "same-namespace: peers of this workload's namespace, mesh: the whole " +
        'trust domain, also the behaviour before any mesh policy is set). A ' +
        'strict mesh forces --mode strict (a permissive request is ignored ' +
        'with a policy.mode_overridden warning), and --dry-run-policy never ' +
        'relaxes a mesh denial.\nSecurity events (denials, refused peers, ' +
        'failed handshakes, rotations, policy changes) are logged and ' +
        'forwarded to the CA in batches of up to 100 every 250 ms; only events ' +
        'logged at --log-level or above are forwarded.\nInterception needs ' +
        '`palisade init-iptables` in the pod and the SO_ORIGINAL_DST addon ' +
        '(built by npm install); the agent must run as the --proxy-uid given ' +
        'there (default 1337). The default outbound port listens on IPv4 ' +
        'loopback only: give --outbound-listen [::]:15101 for IPv6. Limits: ' +
        'plaintext peers in permissive mode are not identified, so the allow ' +
        'list does not apply to them.',
    )
    .action(async (flags: AgentFlags) => {
      const config = loadAgentConfig(flags, deps.env);
      const events =
        config.events.queueSize > 0 ? new EventQueue(config.events.queueSize) : undefined;
      // Every security event is logged and queued for the CA by the same call.
      const log = createLogger({
        component: 'agent',
        level: config.logLevel,
        ...(events ? { onEvent: events.record } : {}),
      });
      const agent = await startAgent(config, {
        log,
        registry: new Registry(),
        ...(events ? { events } : {}),
      });
      const stopped = Promise.race([deps.untilStopped(), agent.shutdownRequested]);
      try {
        await Promise.race([agent.ready, stopped]);
      } catch (err) {
        await agent.stop(0);
        throw err;
      }
      await stopped;
      await agent.stop();
      log.flush();
    });
}

/** Registers `palisade demo` on the program. */
export function registerDemoCommand(program: Command, deps: CliDeps): void {
  program
    .command('demo')
    .description(
      'run a CA and three services with agents on loopback and show who may ' +
        'call whom, then a live revocation',
    )
    .option('--keep', 'leave the mesh running and print the admin URLs', false)
    .action(async (flags: { keep: boolean }) => {
      // Imported here: the demo brings the CA, which `palisade agent` must not load.
      const { runDemo } = await import('../demo/run-demo.js');
      const ok = await runDemo(deps.io, { keep: flags.keep, untilStopped: deps.untilStopped });
      if (!ok)
        throw new PalisadeError(
          'DEMO_FAILED',
          'the mesh did not behave as expected (see the table)',
        );
    });
}
