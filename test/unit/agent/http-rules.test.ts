import t from 'tap';
import {
  authorizeClaims,
  bearerToken,
  matchRule,
  readClaims,
  requestPath,
} from '../../../agent/http/index.js';
import { httpSectionFromText, judgesPort } from '../../../agent/policy/http-section.js';
import {
  checkHttpSection,
  parsePolicyDocument,
  PolicyError,
  type HttpSection,
} from '../../../agent/policy/index.js';

const TD = 'mesh.test';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const BATCH = `spiffe://${TD}/ns/jobs/sa/batch`;

const SECTION = {
  jwt: { issuer: 'https://issuer.example', audience: 'orders', jwks: '/etc/palisade/jwks.json' },
  rules: [
    { methods: ['GET'], path: '/orders', prefix: true, scopes: ['orders.read'] },
    { methods: ['POST'], path: '/orders', scopes: ['orders.write'], clients: ['checkout'] },
    { path: '/healthz', anonymous: true },
    { path: '/internal/', prefix: true, peers: ['ns/jobs/*'], anonymous: true },
  ],
};

function section(value: unknown = SECTION): HttpSection {
  const result = checkHttpSection(value, TD);
  if (!result.ok) throw new Error(result.problems.join('; '));
  return result.section;
}

function problems(value: unknown): string[] {
  const result = checkHttpSection(value, TD);
  return result.ok ? [] : result.problems;
}

function ruleFor(method: string, target: string, peerId: string | undefined = WEB) {
  const match = matchRule(section(), { method, target, peerId });
  return match.ok ? match.rule.name : match.reason;
}

t.test('the http section', async (t) => {
  t.test('parses the issue example into typed rules', async (t) => {
    const s = section();
    t.same(s.jwt, {
      issuer: 'https://issuer.example',
      audience: ['orders'],
      jwks: '/etc/palisade/jwks.json',
      clockSkewSeconds: 30,
    });
    t.equal(s.rules.length, 4);
    t.same(s.rules[1]?.clients, ['checkout']);
    t.equal(s.rules[2]?.anonymous, true);
    t.equal(s.rules[3]?.peers?.[0]?.canonical, `spiffe://${TD}/ns/jobs/*`);
  });

  t.test('names every problem with its place', async (t) => {
    const found = problems({
      jwt: { issuer: '', audience: [], jwks: 'ftp://x', clockSkew: '1h', extra: 1 },
      rules: [
        { path: 'orders', methods: ['get'] },
        { path: '/a', anonymous: true, scopes: ['x'] },
        { path: '/b', peers: ['ns/sho*'], scopes: ['a b'] },
        'nope',
      ],
      route: [],
    });
    for (const place of [
      /^http\.route: unknown key/,
      /^http\.jwt\.extra: unknown key/,
      /^http\.jwt\.issuer: /,
      /^http\.jwt\.audience: /,
      /^http\.jwt\.jwks: "ftp:\/\/x"/,
      /^http\.jwt\.clockSkew: "1h": at most 300 seconds/,
      /^http\.rules\[0\]\.methods\[0\]: "get"/,
      /^http\.rules\[0\]\.path: "orders"/,
      /^http\.rules\[1\]: an anonymous rule cannot also require/,
      /^http\.rules\[2\]\.scopes\[0\]: "a b"/,
      /^http\.rules\[2\]\.peers\[0\]: /,
      /^http\.rules\[3\]: must be a mapping/,
    ]) {
      t.ok(
        found.some((p) => place.test(p)),
        `${place}`,
      );
    }
  });

  t.test('refuses a rule that needs a token when there is no jwt block', async (t) => {
    t.match(problems({ rules: [{ path: '/orders' }] }), [/^http\.rules\[0\]: needs a token/]);
    t.same(problems({ rules: [{ path: '/healthz', anonymous: true }] }), []);
  });

  t.test('refuses an empty rule list, which would deny everything', async (t) => {
    t.match(problems({ jwt: SECTION.jwt, rules: [] }), [/^http\.rules: /]);
  });

  t.test('a policy file with a bad http section is refused whole', async (t) => {
    let caught: unknown;
    try {
      parsePolicyDocument('allow: [ns/shop/sa/web]\nhttp: { rules: [{ path: x }] }\n', 'p', TD);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof PolicyError);
    t.equal((caught as PolicyError).code, 'POLICY_INVALID');
  });

  t.test('a policy file carries its typed http section', async (t) => {
    const doc = parsePolicyDocument(
      'allow: [ns/shop/sa/web]\nhttp:\n  rules:\n    - { path: /healthz, anonymous: true }\n',
      'p',
      TD,
    );
    t.equal(doc.http?.rules[0]?.name, 'rules[0]');
    t.equal(doc.http?.jwt, undefined);
  });
});

t.test('matching requests to rules', async (t) => {
  t.test('matches method and exact path', async (t) => {
    t.equal(ruleFor('POST', '/orders'), 'rules[1]');
    t.equal(ruleFor('post', '/orders'), 'rules[1]', 'methods compare upper-case');
    t.equal(ruleFor('POST', '/orders/7'), 'no-matching-rule', 'an exact path is exact');
  });

  t.test('a prefix covers whole segments only', async (t) => {
    t.equal(ruleFor('GET', '/orders'), 'rules[0]');
    t.equal(ruleFor('GET', '/orders/7/items?x=1'), 'rules[0]');
    t.equal(ruleFor('GET', '/ordersecret'), 'no-matching-rule');
  });

  t.test('a rule without methods matches any method', async (t) => {
    t.equal(ruleFor('DELETE', '/healthz'), 'rules[2]');
  });

  t.test('a peer pattern limits the rule to those peers', async (t) => {
    t.equal(ruleFor('GET', '/internal/stats', BATCH), 'rules[3]');
    t.equal(ruleFor('GET', '/internal/stats', WEB), 'no-matching-rule');
    t.equal(
      ruleFor('GET', '/internal/stats', undefined),
      'no-matching-rule',
      'plaintext has no id',
    );
  });

  t.test('the first matching rule wins', async (t) => {
    const s = section({
      rules: [
        { path: '/', prefix: true, anonymous: true },
        { path: '/healthz', anonymous: true },
      ],
    });
    const match = matchRule(s, { method: 'GET', target: '/healthz', peerId: WEB });
    t.equal(match.ok && match.rule.name, 'rules[0]');
  });

  t.test('refuses paths an application could resolve past the rules', async (t) => {
    for (const target of [
      '/healthz/../orders',
      '/healthz/./x',
      '/healthz/..;/orders',
      '/healthz/%2e%2e/orders',
      '/healthz%2Forders',
      '/a\\b',
      'http://host/orders',
      '*',
    ]) {
      t.equal(requestPath(target), undefined, target);
    }
    t.equal(requestPath('/orders/7?q=../x'), '/orders/7', 'the query is not judged');
  });
});

t.test('token claims and rights', async (t) => {
  const rule = section().rules[1];
  if (rule === undefined) throw new Error('no rule');

  t.test('reads scopes from scope and scp, and the client from client_id or azp', async (t) => {
    t.same(readClaims({ scope: 'a  b', scp: ['c', 7] }).scopes, ['a', 'b', 'c']);
    t.equal(readClaims({ azp: 'web' }).clientId, 'web');
    t.equal(readClaims({ client_id: 'cli', azp: 'web' }).clientId, 'cli');
    t.equal(readClaims({ sub: 42 }).sub, undefined, 'a claim of the wrong type is ignored');
  });

  t.test('names the first missing scope', async (t) => {
    t.same(authorizeClaims(rule, readClaims({ scope: 'orders.read', client_id: 'checkout' })), {
      ok: false,
      reason: 'missing-scope',
      missingScope: 'orders.write',
    });
  });

  t.test('refuses a client the rule does not name', async (t) => {
    t.same(authorizeClaims(rule, readClaims({ scope: 'orders.write', client_id: 'mobile' })), {
      ok: false,
      reason: 'client-not-allowed',
    });
    t.same(authorizeClaims(rule, readClaims({ scope: 'orders.write', client_id: 'checkout' })), {
      ok: true,
    });
  });

  t.test('reads a bearer token, telling no header from a wrong scheme', async (t) => {
    t.equal(bearerToken('Bearer abc.def.ghi'), 'abc.def.ghi');
    t.equal(bearerToken('bearer abc'), 'abc');
    t.equal(bearerToken(undefined), undefined);
    t.equal(bearerToken('Basic dXNlcg=='), null);
    t.equal(bearerToken('Bearer a b'), null);
  });
});

t.test('http mode per port', async (t) => {
  t.test('without ports every application port is judged', async (t) => {
    const s = section();
    t.equal(s.ports, undefined);
    t.ok(judgesPort(s, 8080));
    t.ok(judgesPort(s, 9090));
    t.notOk(judgesPort(undefined, 8080), 'no section judges nothing');
  });

  t.test('with ports only the listed application ports are judged', async (t) => {
    const s = section({ ...SECTION, ports: [8080, 8443, 8080] });
    t.same(s.ports, [8080, 8443]);
    t.ok(judgesPort(s, 8080));
    t.notOk(judgesPort(s, 9090));
  });

  t.test('names every bad port with its place', async (t) => {
    t.match(problems({ ...SECTION, ports: [8080, 0, 'http', 70000] }), [
      /^http\.ports\[1\]: /,
      /^http\.ports\[2\]: /,
      /^http\.ports\[3\]: /,
    ]);
    t.match(problems({ ...SECTION, ports: [] }), [/^http\.ports: /]);
    t.match(problems({ ...SECTION, ports: 8080 }), [/^http\.ports: /]);
  });
});

t.test('the http section from settings text', async (t) => {
  const texts = {
    issuer: 'https://issuer.example',
    audience: 'orders, billing',
    jwks: '/etc/palisade/jwks.json',
    rules: JSON.stringify(SECTION.rules.slice(0, 3)),
    ports: '8080,9090',
  };

  t.test('no setting means no section', async (t) => {
    t.equal(httpSectionFromText({}, TD), undefined);
    t.equal(httpSectionFromText({ rules: ' ' }, TD), undefined);
  });

  t.test('builds the same section a policy file would', async (t) => {
    const result = httpSectionFromText(texts, TD);
    t.ok(result?.ok);
    const expected = section({
      jwt: { ...SECTION.jwt, audience: ['orders', 'billing'] },
      rules: SECTION.rules.slice(0, 3),
      ports: [8080, 9090],
    });
    t.same(result?.ok && result.section, expected);
  });

  t.test('ties every problem to the setting that carried it', async (t) => {
    const bad = httpSectionFromText(
      { issuer: 'https://issuer.example', rules: '[{"path": "/orders"', ports: '80,web' },
      TD,
    );
    t.equal(bad?.ok, false);
    const settings = bad && !bad.ok ? bad.problems.map((p) => p.setting).sort() : [];
    t.same(settings, ['audience', 'jwks', 'ports', 'rules']);

    const badRule = httpSectionFromText({ ...texts, rules: '[{"path": "orders"}]' }, TD);
    t.match(badRule && !badRule.ok && badRule.problems, [
      { setting: 'rules', problem: /^http\.rules\[0\]\.path: / },
    ]);
    const notList = httpSectionFromText({ ...texts, rules: '{"path": "/"}' }, TD);
    t.match(notList && !notList.ok && notList.problems, [{ setting: 'rules' }]);
  });

  t.test('ports alone still need rules', async (t) => {
    const result = httpSectionFromText({ ports: '8080' }, TD);
    t.match(result && !result.ok && result.problems, [
      { setting: 'rules', problem: /^http\.rules: / },
    ]);
  });
});
