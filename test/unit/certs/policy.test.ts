// The mesh policy document as operators write it and the CA stores it: the
// issue's example in YAML and JSON, the open policy, and refusals that name
// every problem.
import t from 'tap';
import { compileMeshPolicyText } from '../../../certs/mesh-policy-state.js';
import {
  checkMeshPolicy,
  findMeshDeny,
  OPEN_MESH_DOCUMENT,
  parseMeshPolicyText,
  PolicyError,
} from '../../../certs/policy/index.js';

const TD = 'cluster.local';
const id = (path: string) => `spiffe://${TD}/${path}`;

const EXAMPLE_YAML = `
mode: strict
default: same-namespace
deny:
  - { from: "*", to: "ns/payments/*", except: ["ns/payments/*"] }
  - { from: "ns/shop/sa/quarantined", to: "*" }
maxCertTtl: 24h
`;

const EXAMPLE_JSON = JSON.stringify({
  mode: 'strict',
  default: 'same-namespace',
  deny: [
    { from: '*', to: 'ns/payments/*', except: ['ns/payments/*'] },
    { from: 'ns/shop/sa/quarantined', to: '*' },
  ],
  maxCertTtl: '24h',
});

function problemsOf(text: string): readonly string[] {
  try {
    parseMeshPolicyText(text, 'test.yaml', TD);
  } catch (err) {
    if (err instanceof PolicyError && err.code === 'POLICY_INVALID') return err.problems;
    throw err;
  }
  throw new Error('document was accepted');
}

t.test('parses the example document of the issue, in YAML and in JSON alike', (t) => {
  const yaml = parseMeshPolicyText(EXAMPLE_YAML, 'mesh.yaml', TD);
  const json = parseMeshPolicyText(EXAMPLE_JSON, 'mesh.json', TD);
  t.equal(yaml.mode, 'strict');
  t.equal(yaml.default, 'same-namespace');
  t.equal(yaml.maxCertTtlSeconds, 86400);
  t.equal(yaml.deny.length, 2);
  t.same(yaml.document, {
    mode: 'strict',
    default: 'same-namespace',
    deny: [
      { from: '*', to: 'ns/payments/*', except: ['ns/payments/*'] },
      { from: 'ns/shop/sa/quarantined', to: '*', except: [] },
    ],
    maxCertTtl: '1d',
  });
  t.equal(JSON.stringify(json.document), JSON.stringify(yaml.document), 'same canonical JSON');
  t.end();
});

t.test('the example denies outsiders into payments and the quarantined identity anywhere', (t) => {
  const policy = parseMeshPolicyText(EXAMPLE_YAML, 'mesh.yaml', TD);
  const shop = id('ns/shop/sa/web');
  const pay = id('ns/payments/sa/api');
  t.equal(findMeshDeny(policy, shop, pay)?.index, 0, 'shop -> payments hits deny[0]');
  t.equal(findMeshDeny(policy, id('ns/payments/sa/worker'), pay), undefined, 'except applies');
  t.equal(findMeshDeny(policy, id('ns/shop/sa/quarantined'), shop)?.index, 1);
  t.equal(findMeshDeny(policy, shop, id('ns/shop/sa/cart')), undefined, 'others pass');
  t.match(findMeshDeny(policy, shop, pay)?.text, /^deny\[0\] \{from: "\*", to: "ns\/payments\/\*"/);
  t.end();
});

t.test('{} is the open policy, and so is its canonical form', (t) => {
  const open = parseMeshPolicyText('{}', 'open.yaml', TD);
  t.same(open.document, OPEN_MESH_DOCUMENT);
  t.equal(open.maxCertTtlSeconds, undefined);
  const again = checkMeshPolicy(JSON.parse(JSON.stringify(open.document)), TD);
  t.ok(again.ok, 'the canonical JSON compiles back');
  t.end();
});

t.test('an empty document is refused rather than read as the open policy', (t) => {
  t.match(problemsOf('   \n'), [/document is empty/]);
  t.end();
});

t.test('names every problem at once: unknown keys, bad values, bad patterns', (t) => {
  const problems = problemsOf(`
mode: lenient
default: everyone
colour: blue
deny:
  - { from: "ns/shop/sa/we*b", to: "*" }
  - { from: "/ns/shop", to: "ns/pay", flavour: x }
  - { to: "*" }
  - "ns/shop/*"
maxCertTtl: forever
`);
  t.match(problems, [
    /^colour: unknown key/,
    /^mode: "lenient": must be one of strict, permissive/,
    /^default: "everyone": must be one of deny, same-namespace, mesh/,
    /^deny\[0\]\.from: "ns\/shop\/sa\/we\*b": '\*' must be a whole segment/,
    /^deny\[1\]\.flavour: unknown key/,
    /^deny\[1\]\.from: "\/ns\/shop": a relative pattern must not start with '\/'/,
    /^deny\[2\]\.from: must be a pattern string, not missing/,
    /^deny\[3\]: must be a mapping/,
    /^maxCertTtl: not a duration: "forever"/,
  ]);
  t.equal(problems.length, 9, 'one line per problem');
  t.end();
});

t.test('refuses bad durations, non-list deny and YAML that does not parse', (t) => {
  t.match(problemsOf('maxCertTtl: 0s'), [/maxCertTtl: "0s": must be positive/]);
  t.match(problemsOf('maxCertTtl: 10 minutes'), [/maxCertTtl: not a duration/]);
  t.match(problemsOf('deny: { from: "*", to: "*" }'), [/deny: must be a list/]);
  t.match(problemsOf('deny:\n  - [unclosed'), [/not valid YAML or JSON/]);
  t.match(problemsOf('- strict'), [/document must be a mapping/]);
  t.match(problemsOf('{"mode": "strict", "deny": [}'), [/not valid YAML or JSON/]);
  t.end();
});

t.test('a pattern of another trust domain is kept in full form', (t) => {
  const policy = parseMeshPolicyText('deny: [{ from: "spiffe://other.test/*", to: "*" }]', 'x', TD);
  t.equal(findMeshDeny(policy, 'spiffe://other.test/ns/a/sa/b', id('ns/x/sa/y'))?.index, 0);
  t.end();
});

t.test('the CA refuses a maxCertTtl shorter than its shortest lifetime, with the rest', (t) => {
  t.equal(compileMeshPolicyText('maxCertTtl: 1h', 'f', TD, 60).maxCertTtlSeconds, 3600);
  try {
    compileMeshPolicyText('mode: loose\nmaxCertTtl: 30s', 'f.yaml', TD, 60);
    t.fail('accepted');
  } catch (err) {
    t.type(err, PolicyError);
    const e = err as PolicyError;
    t.equal(e.code, 'POLICY_INVALID');
    t.match(e.problems, [/^mode: /, /^maxCertTtl: 30s is shorter than this CA's shortest.*\(1m\)/]);
    t.match(e.message, /\(f\.yaml\), 2 problem\(s\):\n {2}- mode: .*\n {2}- maxCertTtl: /);
  }
  t.end();
});
