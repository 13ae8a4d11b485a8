import { PalisadeError } from '../../certs/errors.js';
import { parseCidr, type Cidr } from './cidr.js';

/** The nat chain that inbound TCP to the pod passes through (jumped to from PREROUTING). */
export const INBOUND_CHAIN = 'PALISADE_INBOUND';

/** The nat chain that outbound TCP from the pod passes through (jumped to from OUTPUT). */
export const OUTPUT_CHAIN = 'PALISADE_OUTPUT';

/** Seconds iptables waits for the xtables lock before failing (`-w`). */
const LOCK_WAIT_SECONDS = '5';

/** What the redirection rules are built from. */
export interface InterceptOptions {
  /** The agent's inbound mTLS port; inbound TCP is redirected here. */
  inboundPort: number;
  /** The agent's outbound port; outbound TCP is redirected here. */
  outboundPort: number;
  /** UID the agent runs as; its own traffic is never redirected. */
  proxyUid: number;
  /** Ports the agent itself serves (inbound, outbound, admin): never redirected inbound. */
  agentPorts: readonly number[];
  skipInboundPorts: readonly number[];
  skipOutboundPorts: readonly number[];
  skipOutboundCidrs: readonly Cidr[];
}

/** One iptables invocation. */
export interface IptablesStep {
  family: 4 | 6;
  /** Arguments after the binary name. */
  args: readonly string[];
  /** When this check succeeds, the step is already in place and is skipped. */
  unless?: readonly string[];
  /** A failure is expected and harmless (making a chain that exists, removing a missing one). */
  mayFail?: boolean;
}

/**
 * The steps that install the redirection for one address family: create
 * and flush the two own chains, fill them, and add the jumps from
 * PREROUTING and OUTPUT once. Running them twice leaves identical rules.
 */
export function buildApplySteps(options: InterceptOptions, family: 4 | 6): IptablesStep[] {
  const step = (args: string[], extra: Partial<IptablesStep> = {}): IptablesStep => ({
    family,
    args: ['-w', LOCK_WAIT_SECONDS, '-t', 'nat', ...args],
    ...extra,
    ...(extra.unless ? { unless: ['-w', LOCK_WAIT_SECONDS, '-t', 'nat', ...extra.unless] } : {}),
  });
  const inbound = (rule: string[]) => step(['-A', INBOUND_CHAIN, ...rule]);
  const output = (rule: string[]) => step(['-A', OUTPUT_CHAIN, ...rule]);
  const loopback = family === 4 ? '127.0.0.0/8' : '::1/128';

  const steps: IptablesStep[] = [];
  for (const chain of [INBOUND_CHAIN, OUTPUT_CHAIN]) {
    steps.push(step(['-N', chain], { mayFail: true }), step(['-F', chain]));
  }

  const inboundSkips = unique([...options.agentPorts, ...options.skipInboundPorts]);
  for (const port of inboundSkips) {
    steps.push(inbound(['-p', 'tcp', '--dport', String(port), '-j', 'RETURN']));
  }
  steps.push(inbound(['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(options.inboundPort)]));

  // The agent's own connections (to peers, to the CA, to the application)
  // must leave untouched, or they would loop back into the agent.
  steps.push(
    output(['-m', 'owner', '--uid-owner', String(options.proxyUid), '-j', 'RETURN']),
    output(['-o', 'lo', '-j', 'RETURN']),
    output(['-d', loopback, '-j', 'RETURN']),
  );
  for (const port of unique(options.skipOutboundPorts)) {
    steps.push(output(['-p', 'tcp', '--dport', String(port), '-j', 'RETURN']));
  }
  for (const cidr of options.skipOutboundCidrs) {
    if (cidr.family === family) steps.push(output(['-d', cidr.text, '-j', 'RETURN']));
  }
  steps.push(output(['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(options.outboundPort)]));

  for (const [hook, chain] of JUMPS) {
    const jump = [hook, '-p', 'tcp', '-j', chain];
    steps.push(step(['-A', ...jump], { unless: ['-C', ...jump] }));
  }
  return steps;
}

/** The steps that remove the jumps and both own chains; each may find nothing to remove. */
export function buildCleanupSteps(family: 4 | 6): IptablesStep[] {
  const step = (args: string[]): IptablesStep => ({
    family,
    args: ['-w', LOCK_WAIT_SECONDS, '-t', 'nat', ...args],
    mayFail: true,
  });
  const steps = JUMPS.map(([hook, chain]) => step(['-D', hook, '-p', 'tcp', '-j', chain]));
  for (const chain of [INBOUND_CHAIN, OUTPUT_CHAIN]) {
    steps.push(step(['-F', chain]), step(['-X', chain]));
  }
  return steps;
}

/** Renders steps as the shell commands they stand for (what `--dry-run` prints). */
export function formatSteps(steps: readonly IptablesStep[]): string[] {
  return steps.map((s) => {
    const command = `${binaryFor(s.family)} ${s.args.join(' ')}`;
    if (s.unless) return `${binaryFor(s.family)} ${s.unless.join(' ')} || ${command}`;
    return s.mayFail ? `${command} 2>/dev/null || true` : command;
  });
}

/** The binary that manages rules of an address family. */
export function binaryFor(family: 4 | 6): string {
  return family === 4 ? 'iptables' : 'ip6tables';
}

/** Parses a comma list of TCP ports; throws PORTS_INVALID naming the bad entry. */
export function parsePortList(text: string | undefined): number[] {
  return splitList(text).map((entry) => {
    const port = /^\d{1,5}$/.test(entry) ? Number(entry) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      throw new PalisadeError('PORTS_INVALID', `not a TCP port: ${JSON.stringify(entry)}`);
    }
    return port;
  });
}

/** Parses a comma list of address blocks; throws CIDR_INVALID naming the bad entry. */
export function parseCidrList(text: string | undefined): Cidr[] {
  return splitList(text).map(parseCidr);
}

const JUMPS: readonly (readonly [string, string])[] = [
  ['PREROUTING', INBOUND_CHAIN],
  ['OUTPUT', OUTPUT_CHAIN],
];

function splitList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function unique(ports: readonly number[]): number[] {
  return [...new Set(ports)];
}
