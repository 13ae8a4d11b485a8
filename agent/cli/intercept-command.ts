import type { Command } from 'commander';
import { PalisadeError } from '../../certs/errors.js';
import {
  applySteps,
  buildApplySteps,
  buildCleanupSteps,
  formatSteps,
  hasBinary,
  parseCidrList,
  parsePortList,
  runCommand,
  type CommandRunner,
  type InterceptOptions,
  type IptablesStep,
} from '../intercept/index.js';
import type { CliDeps } from './program.js';

/** The agent's admin port, never redirected inbound (DESIGN.md default ports). */
const ADMIN_PORT = 15120;

/** Flags of `palisade init-iptables` as commander hands them over. */
export interface InitIptablesFlags {
  inboundPort: string;
  outboundPort: string;
  proxyUid: string;
  skipInboundPorts?: string;
  skipOutboundPorts?: string;
  skipOutboundCidrs?: string;
  dryRun?: boolean;
  cleanup?: boolean;
}

/** Registers `palisade init-iptables` on the program; `run` is injected by tests. */
export function registerInterceptCommand(
  program: Command,
  deps: CliDeps,
  run: CommandRunner = runCommand,
): void {
  program
    .command('init-iptables')
    .description(
      "redirect the pod's TCP through its agent (the init step; needs root " +
        "or NET_ADMIN in the pod's network namespace)",
    )
    .option('--inbound-port <port>', 'agent inbound port that inbound TCP goes to', '15106')
    .option('--outbound-port <port>', 'agent outbound port that outbound TCP goes to', '15101')
    .option('--proxy-uid <uid>', 'UID the agent runs as; its traffic is not redirected', '1337')
    .option('--skip-inbound-ports <list>', 'comma list of inbound ports left alone')
    .option('--skip-outbound-ports <list>', 'comma list of destination ports left alone')
    .option('--skip-outbound-cidrs <list>', 'comma list of destination blocks left alone')
    .option('--dry-run', 'print the iptables commands instead of running them')
    .option('--cleanup', 'remove the jumps and the PALISADE_* chains')
    .addHelpText(
      'after',
      '\nRules live in the nat chains PALISADE_INBOUND (from PREROUTING) and ' +
        'PALISADE_OUTPUT (from OUTPUT); running it again replaces them. IPv6 ' +
        'rules are added with ip6tables when it is installed. Only TCP is ' +
        'redirected.',
    )
    .action((flags: InitIptablesFlags) => {
      const options = parseInitIptablesFlags(flags);
      const families: (4 | 6)[] = [4];
      const hasIp6 = hasBinary('ip6tables', run);
      if (hasIp6) families.push(6);
      const steps: IptablesStep[] = families.flatMap((family) =>
        flags.cleanup ? buildCleanupSteps(family) : buildApplySteps(options, family),
      );
      if (flags.dryRun) {
        deps.io.out(`${formatSteps(steps).join('\n')}\n`);
        return;
      }
      applySteps(steps, run);
      deps.io.err(
        `palisade: iptables ${flags.cleanup ? 'rules removed' : 'rules applied'} (${families.map((f) => `IPv${f}`).join(', ')}${hasIp6 ? '' : '; ip6tables not found, IPv6 left alone'})\n`,
      );
    });
}

/** Validates the flags into rule options; throws CONFIG_INVALID naming every bad flag. */
export function parseInitIptablesFlags(flags: InitIptablesFlags): InterceptOptions {
  const problems: string[] = [];
  const attempt = <T>(flag: string, value: string | undefined, parse: (v: string) => T) => {
    try {
      return parse(value ?? '');
    } catch (err) {
      problems.push(`${flag}=${JSON.stringify(value)}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const onePort = (v: string) => {
    const ports = parsePortList(v);
    if (ports.length !== 1) throw new Error('must be one TCP port');
    return ports[0] as number;
  };
  const inboundPort = attempt('--inbound-port', flags.inboundPort, onePort);
  const outboundPort = attempt('--outbound-port', flags.outboundPort, onePort);
  const proxyUid = attempt('--proxy-uid', flags.proxyUid, (v) => {
    if (!/^\d{1,10}$/.test(v)) throw new Error('must be a numeric UID');
    return Number(v);
  });
  const skipInboundPorts = attempt('--skip-inbound-ports', flags.skipInboundPorts, parsePortList);
  const skipOutboundPorts = attempt(
    '--skip-outbound-ports',
    flags.skipOutboundPorts,
    parsePortList,
  );
  const skipOutboundCidrs = attempt(
    '--skip-outbound-cidrs',
    flags.skipOutboundCidrs,
    parseCidrList,
  );
  if (problems.length > 0) {
    throw new PalisadeError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return {
    inboundPort: inboundPort as number,
    outboundPort: outboundPort as number,
    proxyUid: proxyUid as number,
    agentPorts: [inboundPort as number, outboundPort as number, ADMIN_PORT],
    skipInboundPorts: skipInboundPorts ?? [],
    skipOutboundPorts: skipOutboundPorts ?? [],
    skipOutboundCidrs: skipOutboundCidrs ?? [],
  };
}
