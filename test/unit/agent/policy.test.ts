import fs from 'node:fs';
import path from 'node:path';

import t, { type Test } from 'tap';

import {
  buildWorkloadPolicy,
  compilePattern,
  composePolicy,
  decide,
  decideEffective,
  evaluate,
  OPEN_MESH,
  parsePolicyDocument,
  PolicyError,
  PolicyState,
  PolicyWatcher,
  workloadLayers,
  type MeshInForce,
  type WorkloadPolicy,
  type WorkloadPolicyInput,
} from '../../../agent/policy/index.js';
import {
  EventQueue,
  EventReporter,
  MAX_EVENT_QUEUE_SIZE,
  toSecurityEvent,
} from '../../../agent/events/index.js';
import { FakeClock, trustSnapshotOf } from '../../../agent/identity/index.js';
import { createLogger } from '../../../certs/log.js';
import { checkMeshPolicy, findMeshDeny } from '../../../certs/policy/index.js';
import type { MeshPolicyRecord, SecurityEventMessage, TrustUpdate } from '../../../proto/index.js';
import { captureLog } from '../../helpers/log-capture.js';

const TD = 'example.org';
const WEB = 'spiffe://example.org/ns/shop/sa/web';
const DEEP = 'spiffe://example.org/ns/shop/sa/web/canary';
const PAY = 'spiffe://example.org/ns/pay/sa/api';
const OTHER_TD = 'spiffe://other.org/ns/shop/sa/web';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyError) return err.problems;
    throw err;
  }
  return [];
}

t.test('patterns', async (t) => {
  t.test('an exact relative pattern matches only that identity', async (t) => {
    const p = compilePattern('ns/shop/sa/web', TD);
    t.ok(p.matches(WEB));
    t.notOk(p.matches('spiffe://example.org/ns/shop/sa/api'));
    t.notOk(p.matches(DEEP));
    t.notOk(p.matches('spiffe://example.org/ns/shop/sa/webx'));
  });

  t.test('relative and full forms of one identity are the same rule', async (t) => {
    const relative = compilePattern('ns/shop/sa/web', TD);
    const full = compilePattern(WEB, TD);
    t.equal(relative.canonical, full.canonical);
    t.equal(relative.text, 'ns/shop/sa/web');
    t.ok(full.matches(WEB));
  });

  t.test('a relative pattern never matches another trust domain', async (t) => {
    t.notOk(compilePattern('ns/shop/sa/web', TD).matches(OTHER_TD));
  });

  t.test('a full pattern names its own trust domain', async (t) => {
    const p = compilePattern('spiffe://other.org/ns/shop/*', TD);
    t.ok(p.matches(OTHER_TD));
    t.notOk(p.matches(WEB));
  });

  t.test('ns/shop/sa/* matches a service account; ns/shop/* matches deeper', async (t) => {
    const accounts = compilePattern('ns/shop/sa/*', TD);
    t.ok(accounts.matches(WEB));
    t.notOk(accounts.matches('spiffe://example.org/ns/shop/sa'));
    t.notOk(accounts.matches('spiffe://example.org/ns/shop/role/web'));

    const namespace = compilePattern('ns/shop/*', TD);
    t.ok(namespace.matches(WEB));
    t.ok(namespace.matches('spiffe://example.org/ns/shop/role/web'));
    t.notOk(namespace.matches('spiffe://example.org/ns/shop'));
    t.notOk(namespace.matches('spiffe://example.org/ns/shopping/sa/web'));
  });

  t.test('a trailing * matches one or more remaining segments', async (t) => {
    const p = compilePattern('ns/shop/sa/*', TD);
    t.ok(p.matches(DEEP));
    t.notOk(p.matches('spiffe://example.org/ns/shop/sa/'));
  });

  t.test('a middle * matches exactly one segment', async (t) => {
    const p = compilePattern('ns/*/sa/web', TD);
    t.ok(p.matches(WEB));
    t.ok(p.matches('spiffe://example.org/ns/ops/sa/web'));
    t.notOk(p.matches('spiffe://example.org/ns/a/b/sa/web'));
    t.notOk(p.matches('spiffe://example.org/ns/shop/sa/api'));
  });

  t.test('* stays inside the trust domain', async (t) => {
    const p = compilePattern('*', TD);
    t.ok(p.matches(WEB));
    t.ok(p.matches('spiffe://example.org/palisade/admin'));
    t.notOk(p.matches(OTHER_TD));
    t.notOk(p.matches('spiffe://example.org.evil/ns/shop/sa/web'));
    t.notOk(p.matches('spiffe://example.org'));
  });

  t.test('rejects each malformed pattern with POLICY_INVALID', async (t) => {
    for (const bad of [
      '',
      'ns/sho*',
      'ns/**',
      'ns/shop/sa/web?x',
      '/ns/shop',
      'ns//shop',
      'ns/../admin',
      'ns/shop/sa/web page',
      'spiffe://Example.org/ns/shop',
      'spiffe://example.org',
      'SPIFFE://example.org/ns/shop',
      'spiffe://example.org:443/ns/shop',
      'https://example.org/ns/shop',
    ]) {
      t.equal(
        codeOf(() => compilePattern(bad, TD)),
        'POLICY_INVALID',
        JSON.stringify(bad),
      );
    }
  });

  t.test('a rejected pattern is named in the error', async (t) => {
    const problems = problemsOf(() => compilePattern('ns/sho*', TD));
    t.equal(problems.length, 1);
    t.match(problems[0], /"ns\/sho\*"/);
  });
});

t.test('workload policies', async (t) => {
  t.test('collects every bad pattern and setting into one error', async (t) => {
    const build = (): WorkloadPolicy =>
      buildWorkloadPolicy(
        {
          allow: ['ns/ok/*', 'ns/sho*', 'ns/shop/sa/web', 'a//b'],
          mode: 'lenient',
          source: 'flags',
        },
        TD,
      );
    t.equal(codeOf(build), 'POLICY_INVALID');
    const problems = problemsOf(build);
    t.equal(problems.length, 3);
    t.match(problems[0], /^allow\[1\]: "ns\/sho\*"/);
    t.match(problems[1], /^allow\[3\]: "a\/\/b"/);
    t.match(problems[2], /^mode: /);
  });

  t.test('defaults to strict mode, enforcing, with no allow list', async (t) => {
    const policy = buildWorkloadPolicy({ source: 'flags' }, TD);
    t.equal(policy.mode, 'strict');
    t.equal(policy.dryRun, false);
    t.equal(policy.allow, undefined);
    t.match(policy.version, /^[0-9a-f]{12}$/);
  });

  t.test('the version follows the meaning, not the spelling or the source', async (t) => {
    const a = buildWorkloadPolicy({ allow: ['ns/shop/sa/web'], source: 'flags' }, TD);
    const b = buildWorkloadPolicy({ allow: [WEB], source: '/etc/policy.yaml' }, TD);
    const c = buildWorkloadPolicy({ allow: [WEB], mode: 'permissive', source: 'flags' }, TD);
    const d = buildWorkloadPolicy({ allow: [], source: 'flags' }, TD);
    const e = buildWorkloadPolicy({ source: 'flags' }, TD);
    t.equal(a.version, b.version);
    t.not(a.version, c.version);
    t.not(d.version, e.version);
  });
});

t.test('decisions', async (t) => {
  const shop = buildWorkloadPolicy({ allow: ['ns/ops/*', 'ns/shop/sa/*'], source: 'flags' }, TD);

  t.test('allows a peer that a rule matches and names the rule', async (t) => {
    const d = decide(shop, WEB, TD);
    t.match(d, {
      allowed: true,
      wouldDeny: false,
      reason: 'allowed-by-rule',
      rule: 'ns/shop/sa/*',
      layer: 'workload',
      dryRun: false,
    });
  });

  t.test('denies a peer outside the allow list', async (t) => {
    const d = decide(shop, PAY, TD);
    t.match(d, { allowed: false, wouldDeny: true, reason: 'not-in-allow-list', rule: undefined });
    t.equal(d.layer, 'workload');
  });

  t.test('an allow list also decides peers of other trust domains', async (t) => {
    t.equal(decide(shop, OTHER_TD, TD).reason, 'not-in-allow-list');
  });

  t.test('an empty allow list denies everyone', async (t) => {
    const none = buildWorkloadPolicy({ allow: [], source: 'flags' }, TD);
    t.match(decide(none, WEB, TD), { allowed: false, reason: 'not-in-allow-list' });
  });

  t.test('without an allow list the mesh default allows the own trust domain', async (t) => {
    const open = buildWorkloadPolicy({ source: 'flags' }, TD);
    t.match(decide(open, DEEP, TD), {
      allowed: true,
      reason: 'mesh-default',
      layer: 'default',
      rule: undefined,
    });
  });

  t.test('without an allow list another trust domain is refused', async (t) => {
    const open = buildWorkloadPolicy({ source: 'flags' }, TD);
    t.match(decide(open, OTHER_TD, TD), {
      allowed: false,
      wouldDeny: true,
      reason: 'outside-trust-domain',
    });
    t.match(decide(open, 'spiffe://example.org.evil/ns/a/sa/b', TD), { allowed: false });
  });

  t.test('dry-run allows a denied peer but records wouldDeny', async (t) => {
    const dry = buildWorkloadPolicy({ allow: ['ns/ops/*'], dryRun: true, source: 'flags' }, TD);
    const d = decide(dry, WEB, TD);
    t.match(d, { allowed: true, wouldDeny: true, reason: 'not-in-allow-list', dryRun: true });
    t.match(d.explanation, /^would deny \(dry run\): /);
  });

  t.test('the explanation names the peer, the rule and the source', async (t) => {
    t.equal(
      decide(shop, WEB, TD).explanation,
      `allowed: ${WEB} matches 'ns/shop/sa/*' of the allow list (flags)`,
    );
    t.equal(
      decide(shop, PAY, TD).explanation,
      `denied: ${PAY} matches no pattern of the allow list (flags)`,
    );
  });

  t.test('the first matching rule in written order is the one reported', async (t) => {
    const both = buildWorkloadPolicy({ allow: ['ns/shop/*', WEB], source: 'f' }, TD);
    t.equal(decide(both, WEB, TD).rule, 'ns/shop/*');
  });

  t.test('evaluate runs layers in order and the first verdict wins', async (t) => {
    const layers = workloadLayers(shop, TD);
    t.same(
      layers.map((l) => l.name),
      ['workload', 'default'],
    );
    t.same(evaluate(layers, WEB), decide(shop, WEB, TD));
    const denyAll = {
      name: 'workload' as const,
      judge: () => ({
        allowed: false,
        reason: 'not-in-allow-list' as const,
        rule: undefined,
        layer: 'workload' as const,
        dryRun: false,
        meshVersion: 0,
        lead: 'denied: ',
        because: ' by a test layer',
      }),
    };
    t.match(evaluate([denyAll, ...layers], WEB), {
      allowed: false,
      explanation: `denied: ${WEB} by a test layer`,
    });
  });

  t.test('layers that leave a peer undecided fail closed', async (t) => {
    const pass = { name: 'workload' as const, judge: () => undefined };
    t.equal(
      codeOf(() => evaluate([pass], WEB)),
      'POLICY_LAYERS_INCOMPLETE',
    );
  });
});

t.test('policy documents', async (t) => {
  t.test('reads a YAML policy', async (t) => {
    const { policy, http } = parsePolicyDocument(
      'allow: [ns/shop/sa/web, "ns/ops/*"]\nmode: permissive\ndryRun: true\n',
      '/etc/palisade/policy.yaml',
      TD,
    );
    t.same(
      policy.allow?.map((p) => p.text),
      ['ns/shop/sa/web', 'ns/ops/*'],
    );
    t.equal(policy.mode, 'permissive');
    t.equal(policy.dryRun, true);
    t.equal(policy.source, '/etc/palisade/policy.yaml');
    t.equal(http, undefined);
  });

  t.test('reads a JSON policy', async (t) => {
    const { policy } = parsePolicyDocument(
      '{"allow": ["ns/shop/*"], "mode": "strict"}',
      'p.json',
      TD,
    );
    t.ok(decide(policy, WEB, TD).allowed);
    t.equal(policy.mode, 'strict');
  });

  t.test('refuses an http section that is not the request-rule shape', async (t) => {
    const parse = (): unknown =>
      parsePolicyDocument(
        'allow: ["*"]\nhttp:\n  routes:\n    - path: /admin\n      allow: [ns/ops/*]\n',
        'p.yaml',
        TD,
      );
    t.equal(codeOf(parse), 'POLICY_INVALID');
    t.match(problemsOf(parse), [/^http\.routes: unknown key/, /^http\.rules: /]);
  });

  t.test('refuses an unknown key', async (t) => {
    const parse = (): unknown => parsePolicyDocument('allow: []\nalow: [ns/a/*]\n', 'p.yaml', TD);
    t.equal(codeOf(parse), 'POLICY_INVALID');
    t.match(problemsOf(parse), [/^alow: /]);
  });

  t.test('lists every bad pattern and key together', async (t) => {
    const parse = (): unknown =>
      parsePolicyDocument('allow: [ns/a/*, 3, "ns/sho*"]\ndryRun: yes\nx: 1\n', 'p.yaml', TD);
    t.equal(codeOf(parse), 'POLICY_INVALID');
    t.match(problemsOf(parse), [/^x: /, /^allow\[1\]: /, /^allow\[2\]: "ns\/sho\*"/, /^dryRun: /]);
  });

  t.test('refuses broken YAML, an empty file, a list and an oversized file', async (t) => {
    for (const text of ['allow: [ns/a/*', '', '# nothing\n', '- ns/a/*\n', 'allow: null\n']) {
      t.equal(
        codeOf(() => parsePolicyDocument(text, 'p.yaml', TD)),
        'POLICY_INVALID',
        text,
      );
    }
    const huge = `allow: []\n#${'x'.repeat(1024 * 1024)}\n`;
    t.equal(
      codeOf(() => parsePolicyDocument(huge, 'p.yaml', TD)),
      'POLICY_INVALID',
    );
  });
});

t.test('policy watcher', async (t) => {
  /** Starts a watcher on a fresh file; `next()` resolves on its next callback. */
  function setup(t: Test, initial: string) {
    const dir = t.testdir({ 'policy.yaml': initial });
    const file = path.join(dir, 'policy.yaml');
    const captured = captureLog('policy');
    let waiter: ((v: { kind: string; value: unknown }) => void) | undefined;
    const next = (): Promise<{ kind: string; value: unknown }> =>
      new Promise((resolve) => (waiter = resolve));
    const changes: WorkloadPolicy[] = [];
    const watcher = new PolicyWatcher({
      path: file,
      trustDomain: TD,
      log: captured.log,
      pollIntervalMs: 50,
      onChange: (policy, previous) => {
        changes.push(policy);
        waiter?.({ kind: 'change', value: { policy, previous } });
      },
      onError: (err) => waiter?.({ kind: 'error', value: err }),
    });
    t.teardown(() => watcher.stop());
    return { dir, file, watcher, captured, next, changes };
  }

  t.test('refuses to start on a bad file', async (t) => {
    const { watcher, file } = setup(t, 'allow: ["ns/sho*"]\n');
    t.equal(
      codeOf(() => watcher.start()),
      'POLICY_INVALID',
    );
    fs.rmSync(file);
    t.equal(
      codeOf(() => watcher.start()),
      'POLICY_UNREADABLE',
    );
  });

  t.test('applies a changed file and logs policy.loaded', async (t) => {
    const { file, watcher, captured, next } = setup(t, 'allow: [ns/ops/*]\n');
    const first = watcher.start();
    t.notOk(decide(first, WEB, TD).allowed);

    const changed = next();
    fs.writeFileSync(file, 'allow: [ns/ops/*, ns/shop/*]\n');
    const { kind, value } = await changed;
    t.equal(kind, 'change');
    const { policy, previous } = value as { policy: WorkloadPolicy; previous: WorkloadPolicy };
    t.equal(previous, first);
    t.ok(decide(policy, WEB, TD).allowed);
    t.equal(watcher.current, policy);
    t.match(captured.events('policy.loaded'), [
      { level: 'info', msg: 'policy loaded', source: file, version: first.version },
      { level: 'info', msg: 'policy loaded', source: file, version: policy.version },
    ]);
  });

  t.test('keeps the previous policy on a bad rewrite and logs policy.rejected', async (t) => {
    const { file, watcher, captured, next } = setup(t, 'allow: [ns/ops/*]\n');
    const first = watcher.start();

    const refused = next();
    fs.writeFileSync(file, 'allow: [ns/ops/*, "ns/sho*"]\n');
    const { kind, value } = await refused;
    t.equal(kind, 'error');
    t.equal((value as PolicyError).code, 'POLICY_INVALID');
    t.equal(watcher.current, first);
    t.match(captured.events('policy.rejected'), [
      { level: 'error', msg: 'policy rejected', source: file, err_code: 'POLICY_INVALID' },
    ]);
    t.type(captured.events('policy.rejected')[0]?.['reason'], 'string');
  });

  t.test('picks up an atomic rename', async (t) => {
    const { dir, file, watcher, next } = setup(t, 'allow: [ns/ops/*]\n');
    watcher.start();

    const changed = next();
    const tmp = path.join(dir, '.policy.yaml.tmp');
    fs.writeFileSync(tmp, 'allow: [ns/shop/sa/web]\n');
    fs.renameSync(tmp, file);
    const { kind, value } = await changed;
    t.equal(kind, 'change');
    t.ok(decide((value as { policy: WorkloadPolicy }).policy, WEB, TD).allowed);
  });

  t.test('ignores a rewrite with the same policy', async (t) => {
    const { file, watcher, next, changes } = setup(t, 'allow: [ns/ops/*]\n');
    watcher.start();

    fs.writeFileSync(
      file,
      '# same rules, new spelling\nallow: ["spiffe://example.org/ns/ops/*"]\n',
    );
    const changed = next();
    // Only a real change may settle the wait: the rewrite above must not.
    setTimeout(() => fs.writeFileSync(file, 'allow: [ns/shop/*]\n'), 200);
    await changed;
    t.equal(changes.length, 1);
    t.equal(changes[0]?.allow?.[0]?.text, 'ns/shop/*');
  });

  t.test('stop() stops watching', async (t) => {
    const { file, watcher, changes, captured } = setup(t, 'allow: [ns/ops/*]\n');
    watcher.start();
    watcher.stop();

    fs.writeFileSync(file, 'allow: [ns/shop/*]\n');
    // Proving an absence needs a wait: several poll intervals.
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.equal(changes.length, 0);
    t.equal(captured.events('policy.loaded').length, 1);
  });
});

t.test('mesh policy layers', async (t) => {
  const SELF = 'spiffe://example.org/ns/pay/sa/api';
  const PAY_WORKER = 'spiffe://example.org/ns/pay/sa/worker';
  const QUARANTINED = 'spiffe://example.org/ns/shop/sa/quarantined';
  const mesh = (doc: unknown, version = 3): MeshInForce => {
    const result = checkMeshPolicy(doc, TD);
    if (!result.ok) throw new Error(result.problems.join('; '));
    return { version, policy: result.policy };
  };
  const paymentsFenced = mesh({
    mode: 'strict',
    deny: [
      { from: '*', to: 'ns/pay/*', except: ['ns/pay/*'] },
      { from: 'ns/shop/sa/quarantined', to: '*' },
    ],
  });
  const workload = (input: Partial<WorkloadPolicyInput> = {}) =>
    buildWorkloadPolicy({ source: 'flags', ...input }, TD);

  t.test('a mesh deny beats a workload allow and names rule and version', async (t) => {
    const p = composePolicy(workload({ allow: ['ns/shop/*'] }), paymentsFenced, SELF, TD);
    const d = decideEffective(p, WEB);
    t.match(d, {
      allowed: false,
      wouldDeny: true,
      layer: 'mesh',
      reason: 'mesh-deny',
      rule: 'deny[0] {from: "*", to: "ns/pay/*", except: ["ns/pay/*"]}',
      meshVersion: 3,
    });
    t.equal(
      d.explanation,
      `denied: ${WEB} may not call ${SELF}: mesh rule deny[0] {from: "*", to: "ns/pay/*", except: ["ns/pay/*"]} (mesh policy v3)`,
    );
  });

  t.test('an except exempts a caller from a deny rule', async (t) => {
    const p = composePolicy(workload(), paymentsFenced, SELF, TD);
    t.match(decideEffective(p, PAY_WORKER), { allowed: true, layer: 'default' });
  });

  t.test('a quarantined identity may call nobody, whatever the allow list', async (t) => {
    const shop = composePolicy(workload({ allow: ['ns/shop/*'] }), paymentsFenced, WEB, TD);
    t.match(decideEffective(shop, QUARANTINED), { allowed: false, rule: /^deny\[1\]/ });
    t.match(decideEffective(shop, DEEP), { allowed: true, layer: 'workload' });
  });

  t.test('the layer agrees with findMeshDeny on every pair', async (t) => {
    const ids = [WEB, DEEP, PAY, PAY_WORKER, QUARANTINED, SELF];
    for (const callee of ids) {
      const p = composePolicy(workload(), paymentsFenced, callee, TD);
      for (const caller of ids) {
        const rule = findMeshDeny(paymentsFenced.policy, caller, callee);
        const d = decideEffective(p, caller);
        t.equal(d.layer === 'mesh' ? d.rule : undefined, rule?.text, `${caller} -> ${callee}`);
      }
    }
  });

  t.test('the allow list decides what no mesh rule denies', async (t) => {
    const p = composePolicy(workload({ allow: ['ns/ops/*'] }), mesh({ default: 'mesh' }), WEB, TD);
    t.match(decideEffective(p, DEEP), { allowed: false, layer: 'workload', meshVersion: 3 });
  });

  t.test('default deny admits nobody without an allow list', async (t) => {
    const p = composePolicy(workload(), mesh({ default: 'deny' }), WEB, TD);
    t.match(decideEffective(p, DEEP), {
      allowed: false,
      layer: 'default',
      reason: 'mesh-default-deny',
    });
  });

  t.test('default same-namespace admits only peers of the own namespace', async (t) => {
    const p = composePolicy(workload(), mesh({ default: 'same-namespace' }), WEB, TD);
    t.match(decideEffective(p, DEEP), { allowed: true, reason: 'mesh-default' });
    t.match(decideEffective(p, PAY), { allowed: false, reason: 'outside-namespace' });
    t.match(decideEffective(p, 'spiffe://example.org/ns/shopx/sa/web'), { allowed: false });
    t.match(decideEffective(p, OTHER_TD), { allowed: false, reason: 'outside-trust-domain' });
  });

  t.test('default mesh admits the trust domain, as without a mesh policy', async (t) => {
    const p = composePolicy(workload(), mesh({ default: 'mesh' }), WEB, TD);
    t.match(decideEffective(p, PAY), { allowed: true, reason: 'mesh-default' });
    t.match(decideEffective(p, OTHER_TD), { allowed: false });
  });

  t.test('without a mesh policy decisions are those of the workload alone', async (t) => {
    const shop = workload({ allow: ['ns/shop/*'] });
    const p = composePolicy(shop, OPEN_MESH, PAY, TD);
    for (const peer of [WEB, PAY, OTHER_TD])
      t.same(decideEffective(p, peer), decide(shop, peer, TD));
    t.equal(p.mode, 'strict');
    t.equal(decideEffective(p, WEB).meshVersion, 0);
  });

  t.test('a strict mesh overrides a permissive workload', async (t) => {
    const lax = workload({ mode: 'permissive' });
    const p = composePolicy(lax, mesh({ mode: 'strict' }), WEB, TD);
    t.equal(p.mode, 'strict');
    t.ok(p.isModeOverridden);
    const open = composePolicy(lax, mesh({ mode: 'permissive' }), WEB, TD);
    t.equal(open.mode, 'permissive');
    t.notOk(open.isModeOverridden);
  });

  t.test('a workload dry run does not loosen a mesh verdict', async (t) => {
    const dry = workload({ allow: ['ns/ops/*'], dryRun: true });
    const fenced = composePolicy(dry, paymentsFenced, SELF, TD);
    t.match(decideEffective(fenced, WEB), { allowed: false, dryRun: false, layer: 'mesh' });
    t.match(decideEffective(fenced, PAY_WORKER), {
      allowed: true,
      wouldDeny: true,
      dryRun: true,
      layer: 'workload',
    });
    const none = composePolicy(workload({ dryRun: true }), mesh({ default: 'deny' }), WEB, TD);
    t.match(decideEffective(none, DEEP), { allowed: false, dryRun: false });
  });
});

t.test('policy state', async (t) => {
  const SELF = 'spiffe://example.org/ns/pay/sa/api';
  const compiled = (doc: unknown, version: number): MeshInForce => {
    const result = checkMeshPolicy(doc, TD);
    if (!result.ok) throw new Error(result.problems.join('; '));
    return { version, policy: result.policy };
  };
  function setup(input: Partial<WorkloadPolicyInput> = {}) {
    const captured = captureLog('policy');
    const peers = [WEB, PAY];
    const closed: { peerId: string; reason: string }[] = [];
    const versions: number[] = [];
    const denials: string[] = [];
    const state = new PolicyState(buildWorkloadPolicy({ source: 'flags', ...input }, TD), {
      trustDomain: TD,
      selfId: SELF,
      log: captured.log,
      closeInbound: (reasonFor) => {
        let n = 0;
        for (const peerId of peers) {
          const reason = reasonFor(peerId);
          if (reason) {
            closed.push({ peerId, reason });
            n++;
          }
        }
        return n;
      },
      metrics: {
        meshVersion: (v) => versions.push(v),
        denial: (layer, dryRun) => denials.push(`${layer}:${dryRun}`),
      },
    });
    return { state, captured, closed, versions, denials };
  }

  t.test('a new mesh version applies at once and closes what it forbids', async (t) => {
    const { state, captured, closed, versions } = setup();
    state.applyMesh(compiled({ deny: [{ from: 'ns/shop/*', to: '*' }] }, 1), undefined);
    t.same(closed, [{ peerId: WEB, reason: 'mesh-policy-denied' }]);
    t.same(versions, [0, 1]);
    t.match(captured.events('policy.mesh_applied'), [
      { version: 1, previous_version: 0, closed: 1, deny_rules: 1 },
    ]);
    t.equal(state.current.mesh.version, 1);
  });

  t.test('the same version again changes nothing', async (t) => {
    const { state, captured, closed } = setup();
    const v1 = compiled({ deny: [{ from: 'ns/shop/*', to: '*' }] }, 1);
    state.applyMesh(v1, undefined);
    state.applyMesh(v1, undefined);
    t.equal(captured.events('policy.mesh_applied').length, 1);
    t.equal(closed.length, 1);
  });

  t.test('a rejected version keeps the last good one and is logged once', async (t) => {
    const { state, captured } = setup();
    const v1 = compiled({ default: 'deny' }, 1);
    state.applyMesh(v1, undefined);
    const rejection = { version: 2, problems: ['mode: "lax": must be one of strict, permissive'] };
    state.applyMesh(v1, rejection);
    state.applyMesh(v1, rejection);
    t.equal(state.current.mesh, v1);
    t.match(captured.events('policy.mesh_rejected'), [
      { version: 2, kept_version: 1, err_code: 'POLICY_INVALID', reason: /mode/ },
    ]);
  });

  t.test('a strict mesh over a permissive workload logs policy.mode_overridden', async (t) => {
    const { state, captured } = setup({ mode: 'permissive' });
    t.equal(state.current.mode, 'permissive');
    state.applyMesh(compiled({ mode: 'strict' }, 1), undefined);
    t.equal(state.current.mode, 'strict');
    t.match(captured.events('policy.mode_overridden'), [
      { requested_mode: 'permissive', mode: 'strict', mesh_version: 1 },
    ]);
    state.applyMesh(compiled({ mode: 'strict', default: 'mesh' }, 2), undefined);
    t.equal(captured.events('policy.mode_overridden').length, 1, 'not repeated while it holds');
  });

  t.test('a workload change keeps the mesh and closes with policy-denied', async (t) => {
    const { state, captured, closed } = setup();
    state.applyMesh(compiled({ default: 'mesh' }, 4), undefined);
    state.setWorkload(buildWorkloadPolicy({ allow: ['ns/pay/*'], source: 'f' }, TD));
    t.same(closed, [{ peerId: WEB, reason: 'policy-denied' }]);
    t.match(captured.events('policy.applied'), [{ source: 'f', mesh_version: 4, closed: 1 }]);
  });

  t.test('admit counts denials by layer; explain counts nothing', async (t) => {
    const { state, denials } = setup({ allow: ['ns/pay/*'], dryRun: true });
    state.applyMesh(compiled({ deny: [{ from: 'ns/shop/sa/web', to: '*' }] }, 1), undefined);
    state.admit(WEB);
    state.admit(DEEP);
    state.admit(PAY);
    state.explain(WEB);
    t.same(denials, ['mesh:false', 'workload:true']);
  });
});

t.test('mesh policy in trust snapshots', async (t) => {
  // An empty bundle parses to an empty trust store: only the mesh policy matters here.
  const bundlePem: string[] = [];
  const update = (version: number, meshPolicy?: Partial<MeshPolicyRecord>): TrustUpdate => ({
    version,
    trustBundlePem: bundlePem,
    revokedSerials: [],
    revokedIds: [],
    publishedUnixMs: 0,
    ...(meshPolicy
      ? {
          meshPolicy: {
            version: 0,
            documentJson: '',
            setUnixMs: 5,
            setBy: 'spiffe://example.org/palisade/admin',
            source: 'p.yaml',
            ...meshPolicy,
          },
        }
      : {}),
  });
  const at = new Date(0);

  t.test('version 0 or no record is the open policy', async (t) => {
    t.equal(trustSnapshotOf(update(1), undefined, at, TD).meshPolicy, undefined);
    t.equal(trustSnapshotOf(update(1, { version: 0 }), undefined, at, TD).meshPolicy, undefined);
  });

  t.test('a record is compiled once and kept while its version holds', async (t) => {
    const doc = JSON.stringify({ mode: 'strict', default: 'deny', deny: [], maxCertTtl: null });
    const first = trustSnapshotOf(update(1, { version: 2, documentJson: doc }), undefined, at, TD);
    t.match(first.meshPolicy, { version: 2, setUnixMs: 5, policy: { default: 'deny' } });
    const second = trustSnapshotOf(update(2, { version: 2, documentJson: doc }), first, at, TD);
    t.equal(second.meshPolicy, first.meshPolicy);
  });

  t.test('a document that does not compile keeps the last good one', async (t) => {
    const good = JSON.stringify({ default: 'deny' });
    const first = trustSnapshotOf(update(1, { version: 2, documentJson: good }), undefined, at, TD);
    const bad = trustSnapshotOf(
      update(2, { version: 3, documentJson: '{"default":"nobody"}' }),
      first,
      at,
      TD,
    );
    t.equal(bad.meshPolicy, first.meshPolicy);
    t.match(bad.meshRejection, { version: 3, problems: [/default/] });
    const again = trustSnapshotOf(update(3, { version: 3, documentJson: '{' }), bad, at, TD);
    t.equal(again.meshRejection, bad.meshRejection, 'one rejection per version');
    const broken = trustSnapshotOf(update(4, { version: 4, documentJson: '{' }), again, at, TD);
    t.match(broken.meshRejection, { version: 4, problems: [/not JSON/] });
  });
});

t.test('security event queue and reporter', async (t) => {
  const denial = (peer: string) => ({
    event: 'policy.denied',
    direction: 'inbound',
    peer_id: peer,
    reason: 'mesh-deny',
    rule: 'deny[0] {from: "*", to: "*"}',
    explanation: 'denied',
  });

  t.test('takes forwarded events only and converts them to the wire form', async (t) => {
    const queue = new EventQueue(10, () => 42);
    queue.record(denial(WEB));
    queue.record({ event: 'trust.updated', version: 3 });
    queue.record({ msg: 'no event' });
    t.equal(queue.length, 1);
    t.same(queue.peek(10), [
      {
        kind: 'policy.denied',
        atUnixMs: 42,
        peerId: WEB,
        direction: 'inbound',
        reason: 'mesh-deny',
        rule: 'deny[0] {from: "*", to: "*"}',
        detailJson: '{"explanation":"denied"}',
      },
    ]);
  });

  t.test('is bounded: overflow is dropped and counted with its time span', async (t) => {
    let now = 1000;
    const queue = new EventQueue(3, () => now++);
    for (let i = 0; i < 5; i++) queue.record(denial(WEB));
    t.equal(queue.length, 3);
    t.same(queue.counts(), { queued: 3, sent: 0, dropped: 2, length: 3 });
    t.same(queue.takeDropped(), { count: 2, firstUnixMs: 1003, lastUnixMs: 1004 });
    t.equal(queue.takeDropped(), undefined);
  });

  t.test('peek leaves events until ack removes the oldest', async (t) => {
    const queue = new EventQueue(4);
    for (const peer of [WEB, PAY, DEEP]) queue.record(denial(peer));
    t.same(
      queue.peek(2).map((e) => e.peerId),
      [WEB, PAY],
    );
    t.equal(queue.length, 3);
    queue.ack(2);
    for (const peer of [WEB, PAY, OTHER_TD]) queue.record(denial(peer));
    t.same(
      queue.peek(10).map((e) => e.peerId),
      [DEEP, WEB, PAY, OTHER_TD],
      'wraps around',
    );
    t.match(queue.counts(), { sent: 2, length: 4 });
  });

  t.test('refuses a size out of range', async (t) => {
    t.equal(
      codeOf(() => new EventQueue(0)),
      'CONFIG_INVALID',
    );
    t.equal(
      codeOf(() => new EventQueue(MAX_EVENT_QUEUE_SIZE + 1)),
      'CONFIG_INVALID',
    );
  });

  t.test('oversized details are replaced by a note of their size', async (t) => {
    const event = toSecurityEvent({ event: 'http.denied', path: 'x'.repeat(5000) }, 1);
    t.same(JSON.parse(event.detailJson), { truncated: true, bytes: 5011 });
  });

  /** A reporter on a fake clock whose sends the test settles by hand. */
  function harness(capacity: number) {
    const clock = new FakeClock(0);
    const queue = new EventQueue(capacity, () => clock.now());
    const captured = captureLog('events');
    const log = createLogger({
      component: 'events',
      level: 'debug',
      destination: { write: (line: string) => void captured.lines.push(JSON.parse(line)) },
      onEvent: queue.record,
    });
    const calls: { events: SecurityEventMessage[]; settle: (ok: boolean | Error) => void }[] = [];
    const reporter = new EventReporter({
      queue,
      log,
      clock,
      random: () => 0.5,
      send: (events) =>
        new Promise<void>((resolve, reject) =>
          calls.push({
            events,
            settle: (ok) =>
              ok === true ? resolve() : reject(ok === false ? new Error('down') : ok),
          }),
        ),
    });
    const settle = async (ok: boolean | Error) => {
      calls.shift()?.settle(ok);
      await new Promise((r) => setImmediate(r));
    };
    return { clock, queue, log, captured, calls, reporter, settle };
  }

  t.test('sends batches of at most 100 with one call in flight', async (t) => {
    const { clock, log, calls, reporter, settle, queue } = harness(1000);
    for (let i = 0; i < 150; i++) log.warn(denial(WEB), 'peer denied by policy');
    reporter.start();
    clock.advance(250);
    t.equal(calls.length, 1);
    t.equal(calls[0]?.events.length, 100);
    clock.advance(1000);
    t.equal(calls.length, 1, 'no second call while one is in flight');
    await settle(true);
    clock.advance(0);
    t.equal(calls[0]?.events.length, 50, 'a backlog goes out at once');
    await settle(true);
    t.match(queue.counts(), { sent: 150, length: 0 });
    await reporter.stop();
  });

  t.test('keeps the queue on failure, retries, then reports what was dropped', async (t) => {
    const { clock, log, calls, reporter, settle, queue, captured } = harness(5);
    reporter.start();
    for (let i = 0; i < 3; i++) log.warn(denial(WEB), 'peer denied by policy');
    clock.advance(250);
    await settle(false);
    for (let i = 0; i < 4; i++) log.warn(denial(PAY), 'peer denied by policy');
    t.equal(queue.length, 5, 'the failed batch is kept');
    t.equal(queue.counts().dropped, 2);
    clock.advance(5000);
    t.equal(calls[0]?.events.length, 5, 'retried after the backoff');
    await settle(true);
    const dropped = captured.events('events.dropped');
    t.match(dropped, [{ count: 2, queue_size: 5 }]);
    t.equal(queue.length, 1, 'events.dropped is queued for the CA itself');
    clock.advance(250);
    t.equal(calls[0]?.events[0]?.kind, 'events.dropped');
    t.match(JSON.parse(calls[0]?.events[0]?.detailJson ?? '{}'), { count: 2 });
    await settle(true);
    t.equal(
      captured.lines.filter((l) => l['msg'] === 'security event report failed, retrying').length,
      1,
    );
    await reporter.stop();
  });

  t.test('drops a batch the CA refuses for good and counts it', async (t) => {
    const { clock, log, calls, reporter, settle, queue, captured } = harness(10);
    reporter.start();
    log.warn(denial(WEB), 'peer denied by policy');
    clock.advance(250);
    await settle(Object.assign(new Error('bad batch'), { grpcCode: 3, code: 'EVENTS_INVALID' }));
    t.match(queue.counts(), { length: 0, dropped: 1 });
    log.warn(denial(PAY), 'peer denied by policy');
    clock.advance(250);
    t.equal(calls[0]?.events[0]?.peerId, PAY, 'later events are not held up');
    await settle(true);
    t.match(captured.events('events.dropped'), [{ count: 1 }]);
    await reporter.stop();
  });
});
