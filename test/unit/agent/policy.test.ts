import fs from 'node:fs';
import path from 'node:path';

import t, { type Test } from 'tap';

import {
  buildWorkloadPolicy,
  compilePattern,
  decide,
  evaluate,
  parsePolicyDocument,
  PolicyError,
  PolicyWatcher,
  workloadLayers,
  type WorkloadPolicy,
} from '../../../agent/policy/index.js';
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
