import t from 'tap';
import { PalisadeError } from '../../../certs/errors.js';
import {
  applySteps,
  buildApplySteps,
  buildCleanupSteps,
  CidrSet,
  formatSteps,
  parseCidr,
  parseCidrList,
  parsePortList,
  type CommandResult,
  type InterceptOptions,
} from '../../../agent/intercept/index.js';
import { parseInitIptablesFlags } from '../../../agent/cli/intercept-command.js';

const options: InterceptOptions = {
  inboundPort: 15106,
  outboundPort: 15101,
  proxyUid: 1337,
  agentPorts: [15106, 15101, 15120],
  skipInboundPorts: [22],
  skipOutboundPorts: [5432],
  skipOutboundCidrs: [parseCidr('10.9.0.0/16'), parseCidr('fd00::/8')],
};

const rulesOf = (family: 4 | 6) =>
  buildApplySteps(options, family)
    .map((s) => s.args.join(' '))
    .filter((a) => a.includes(' -A PALISADE_'));

t.test(
  'redirects inbound TCP to the inbound port except the agent and skipped ports',
  async (t) => {
    const rules = rulesOf(4).filter((r) => r.includes('PALISADE_INBOUND'));
    for (const port of [15106, 15101, 15120, 22]) {
      t.ok(rules.includes(`-w 5 -t nat -A PALISADE_INBOUND -p tcp --dport ${port} -j RETURN`));
    }
    t.equal(
      rules.at(-1),
      '-w 5 -t nat -A PALISADE_INBOUND -p tcp -j REDIRECT --to-ports 15106',
      'the redirect comes after every exclusion',
    );
  },
);

t.test(
  'redirects outbound TCP except the proxy UID, loopback and skipped ports and blocks',
  async (t) => {
    const rules = rulesOf(4).filter((r) => r.includes('PALISADE_OUTPUT'));
    t.same(
      rules.map((r) => r.replace('-w 5 -t nat -A PALISADE_OUTPUT ', '')),
      [
        '-m owner --uid-owner 1337 -j RETURN',
        '-o lo -j RETURN',
        '-d 127.0.0.0/8 -j RETURN',
        '-p tcp --dport 5432 -j RETURN',
        '-d 10.9.0.0/16 -j RETURN',
        '-p tcp -j REDIRECT --to-ports 15101',
      ],
    );
  },
);

t.test('puts each address block only in the rules of its own family', async (t) => {
  const v6 = rulesOf(6).join('\n');
  t.match(v6, /-d fd00::\/8 -j RETURN/);
  t.match(v6, /-d ::1\/128 -j RETURN/);
  t.notMatch(v6, /10\.9\.0\.0/);
});

t.test('adds each jump only when a check finds it missing', async (t) => {
  const jumps = buildApplySteps(options, 4).filter((s) => s.unless);
  t.same(
    jumps.map((s) => s.unless?.slice(4)),
    [
      ['-C', 'PREROUTING', '-p', 'tcp', '-j', 'PALISADE_INBOUND'],
      ['-C', 'OUTPUT', '-p', 'tcp', '-j', 'PALISADE_OUTPUT'],
    ],
  );
});

t.test('applies the same commands twice for identical rules (flush and refill)', async (t) => {
  const table = new Map<string, string[]>([
    ['PREROUTING', []],
    ['OUTPUT', []],
  ]);
  const run = (_binary: string, args: readonly string[]): CommandResult => {
    const [op, chain = '', ...rule] = args.slice(4);
    const rules = table.get(chain);
    const text = rule.join(' ');
    if (op === '-N') {
      if (rules) return { status: 1, stderr: 'Chain already exists.' };
      table.set(chain, []);
    } else if (!rules) return { status: 1, stderr: 'No chain/target/match by that name.' };
    else if (op === '-F') rules.length = 0;
    else if (op === '-A') rules.push(text);
    else if (op === '-C') return { status: rules.includes(text) ? 0 : 1, stderr: '' };
    return { status: 0, stderr: '' };
  };
  applySteps(buildApplySteps(options, 4), run);
  const first = JSON.stringify([...table]);
  applySteps(buildApplySteps(options, 4), run);
  t.equal(JSON.stringify([...table]), first);
  t.same(table.get('PREROUTING'), ['-p tcp -j PALISADE_INBOUND'], 'one jump, not two');
});

t.test('cleanup removes the jumps, then flushes and deletes both chains', async (t) => {
  const steps = buildCleanupSteps(4);
  t.same(
    steps.map((s) => s.args.slice(4, 6).join(' ')),
    [
      '-D PREROUTING',
      '-D OUTPUT',
      '-F PALISADE_INBOUND',
      '-X PALISADE_INBOUND',
      '-F PALISADE_OUTPUT',
      '-X PALISADE_OUTPUT',
    ],
  );
  t.ok(steps.every((s) => s.mayFail));
});

t.test('dry run renders runnable shell commands', async (t) => {
  const lines = formatSteps(buildApplySteps(options, 6));
  t.equal(lines[0], 'ip6tables -w 5 -t nat -N PALISADE_INBOUND 2>/dev/null || true');
  t.match(lines.at(-1) ?? '', /^ip6tables .* -C OUTPUT .* \|\| ip6tables .* -A OUTPUT /);
});

t.test('reports a missing iptables binary as IPTABLES_MISSING', async (t) => {
  const run = (): CommandResult => ({ status: undefined, stderr: '', spawnError: 'ENOENT' });
  t.throws(() => applySteps(buildApplySteps(options, 4), run), { code: 'IPTABLES_MISSING' });
});

t.test('reports missing privileges as IPTABLES_DENIED', async (t) => {
  const run = (): CommandResult => ({
    status: 4,
    stderr:
      "iptables v1.8.9 (nf_tables): can't initialize iptables table `nat': Permission denied (you must be root)",
  });
  t.throws(() => applySteps(buildApplySteps(options, 4), run), { code: 'IPTABLES_DENIED' });
});

t.test('reports any other failure as IPTABLES_FAILED', async (t) => {
  const run = (): CommandResult => ({ status: 2, stderr: 'Bad argument' });
  t.throws(() => applySteps(buildApplySteps(options, 4), run), { code: 'IPTABLES_FAILED' });
});

t.test('parses port and address-block lists and rejects bad entries', async (t) => {
  t.same(parsePortList(' 80, 443 '), [80, 443]);
  t.same(parsePortList(undefined), []);
  t.throws(() => parsePortList('80,http'), { code: 'PORTS_INVALID' });
  t.throws(() => parsePortList('70000'), { code: 'PORTS_INVALID' });
  t.same(
    parseCidrList('10.0.0.0/8,fd00::/8,192.0.2.1').map((c) => c.text),
    ['10.0.0.0/8', 'fd00::/8', '192.0.2.1/32'],
  );
  t.throws(() => parseCidr('10.0.0.0/33'), { code: 'CIDR_INVALID' });
  t.throws(() => parseCidr('mesh'), { code: 'CIDR_INVALID' });
});

t.test('tells addresses inside the mesh blocks from those outside', async (t) => {
  const mesh = new CidrSet(parseCidrList('10.213.0.0/24,fd00:1::/64'));
  t.ok(mesh.has('10.213.0.7'));
  t.ok(mesh.has('::ffff:10.213.0.7'), 'IPv4-mapped IPv6 counts as IPv4');
  t.ok(mesh.has('fd00:1::5'));
  t.notOk(mesh.has('10.214.0.7'));
  t.notOk(mesh.has('not-an-address'));
});

t.test('init-iptables names every bad flag in one CONFIG_INVALID error', async (t) => {
  const err = t.throws(() =>
    parseInitIptablesFlags({ inboundPort: 'x', outboundPort: '15101', proxyUid: 'root' }),
  ) as PalisadeError;
  t.equal(err.code, 'CONFIG_INVALID');
  const parsed = parseInitIptablesFlags({
    inboundPort: '15106',
    outboundPort: '15101',
    proxyUid: '1337',
    skipOutboundCidrs: '169.254.169.254/32',
  });
  t.same(parsed.agentPorts, [15106, 15101, 15120]);
  t.equal(parsed.skipOutboundCidrs[0]?.text, '169.254.169.254/32');
});
