import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../../../agent/config/config-error.js';
import { loadAgentConfig, parseUpstream } from '../../../agent/config/agent-config.js';
import { loadCaServeConfig } from '../../../agent/config/ca-config.js';
import { createRootCertificate, generateKeyPairSync } from '../../../certs/x509/index.js';

const dir = mkdtempSync(join(tmpdir(), 'palisade-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const bundle = join(dir, 'bundle.pem');
writeFileSync(
  bundle,
  createRootCertificate({ key: generateKeyPairSync(), trustDomain: 'cfg.test' }).pem,
);
const base = {
  caBundle: bundle,
  joinToken: 'pjt_x',
  id: 'spiffe://cfg.test/ns/shop/sa/web',
  appAddr: '127.0.0.1:8080',
};

t.test('applies defaults, then env, then flags', async (t) => {
  const config = loadAgentConfig(base, {
    PALISADE_MODE: 'permissive',
    PALISADE_ALLOW: 'ns/a/*, ns/b/sa/c',
  });
  t.equal(config.ca.addr, '127.0.0.1:15112');
  t.same(config.inbound.listen, { host: '0.0.0.0', port: 15106 });
  t.same(config.admin.listen, { host: '127.0.0.1', port: 15120 });
  t.equal(config.policy.mode, 'permissive', 'from env');
  t.same(config.policy.allow, ['ns/a/*', 'ns/b/sa/c']);
  t.equal(config.identity.trustDomain, 'cfg.test');
  const flagsWin = loadAgentConfig(
    { ...base, mode: 'strict', allow: ['*'] },
    { PALISADE_MODE: 'permissive' },
  );
  t.equal(flagsWin.policy.mode, 'strict');
  t.same(flagsWin.policy.allow, ['*']);
  t.ok(Object.isFrozen(config.inbound), 'config is frozen');
});

t.test('takes the trust domain from the bundle root when nothing names it', async (t) => {
  const config = loadAgentConfig(
    { caBundle: bundle, tokenFile: '/var/run/token', appAddr: '127.0.0.1:1' },
    {},
  );
  t.equal(config.identity.trustDomain, 'cfg.test');
});

t.test('names every bad flag and variable in one error', async (t) => {
  const err = t.throws(() =>
    loadAgentConfig(
      {
        caAddr: 'nowhere',
        caBundle: join(dir, 'missing.pem'),
        joinToken: 'pjt_x',
        appAddr: 'bad',
        inboundMaxConnections: '-3',
        upstream: ['9000=10.0.0.1'],
        mode: 'lenient',
        certTtl: 'forever',
      },
      { PALISADE_LOG_LEVEL: 'loud' },
    ),
  ) as ConfigError;
  t.equal(err.code, 'CONFIG_INVALID');
  const settings = err.problems.map((p) => p.setting).sort();
  t.same(settings, [
    '--app-addr',
    '--ca-addr',
    '--ca-bundle',
    '--cert-ttl',
    '--id',
    '--inbound-max-connections',
    '--log-level',
    '--mode',
    '--upstream',
  ]);
  t.notMatch(err.message, /pjt_x/, 'the join token is never echoed');
});

t.test('refuses --allow together with --policy-file, and both proofs at once', async (t) => {
  const err = t.throws(() =>
    loadAgentConfig({ ...base, tokenFile: '/t', allow: ['*'], policyFile: '/p.yaml' }, {}),
  ) as ConfigError;
  t.same(err.problems.map((p) => p.setting).sort(), ['--join-token', '--policy-file']);
});

t.test('parses upstream specs with and without an expected identity', async (t) => {
  t.same(parseUpstream('9001=10.0.0.7:15106@spiffe://td/ns/a/sa/b'), {
    localPort: 9001,
    host: '10.0.0.7',
    port: 15106,
    expectedId: 'spiffe://td/ns/a/sa/b',
  });
  t.same(parseUpstream('0=orders.shop:15106'), {
    localPort: 0,
    host: 'orders.shop',
    port: 15106,
    expectedId: undefined,
  });
  t.throws(() => parseUpstream('orders:15106'));
  t.throws(() => parseUpstream('70000=h:1'));
});

t.test('ca serve config reports every bad setting at once', async (t) => {
  const err = t.throws(() =>
    loadCaServeConfig(
      { listen: 'x', defaultTtl: '48h', maxTtl: '24h', saJwks: '/jwks.json' },
      { PALISADE_CA_MIN_TTL: '1s' },
    ),
  ) as ConfigError;
  t.same(err.problems.map((p) => p.setting).sort(), [
    '--default-ttl',
    '--listen',
    '--min-ttl',
    '--sa-issuer',
  ]);
  const ok = loadCaServeConfig({}, { PALISADE_CA_MAX_TTL: '12h' });
  t.equal(ok.maxTtlSeconds, 43200);
  t.equal(ok.defaultTtlSeconds, 3600);
  t.same(ok.listen, { host: '0.0.0.0', port: 15112 });
});

t.test('http mode from flags and env builds the policy http section', async (t) => {
  const rules = JSON.stringify([
    { methods: ['GET'], path: '/orders', prefix: true, scopes: ['orders.read'] },
    { path: '/healthz', anonymous: true },
  ]);
  const none = loadAgentConfig(base, {});
  t.equal(none.policy.http, undefined, 'no flags, no http section');

  const config = loadAgentConfig(
    { ...base, jwtIssuer: 'https://issuer.example', httpPorts: '8080' },
    {
      PALISADE_JWT_AUDIENCE: 'orders,billing',
      PALISADE_JWT_JWKS: 'https://issuer.example/jwks',
      PALISADE_HTTP_RULES: rules,
      PALISADE_HTTP_PORTS: '9999',
    },
  );
  const http = config.policy.http;
  t.equal(http?.jwt?.issuer, 'https://issuer.example');
  t.same(http?.jwt?.audience, ['orders', 'billing']);
  t.equal(http?.jwt?.jwks, 'https://issuer.example/jwks');
  t.same(
    http?.rules.map((r) => r.name),
    ['rules[0]', 'rules[1]'],
  );
  t.same(http?.ports, [8080], 'the flag wins over the env');
});

t.test('bad http flags are each named in one error', async (t) => {
  const err = t.throws(() =>
    loadAgentConfig(
      {
        ...base,
        jwtIssuer: 'https://issuer.example',
        jwtJwks: 'ftp://keys',
        httpRules: '[{"path": "orders"}]',
        httpPorts: '80,http',
      },
      {},
    ),
  ) as ConfigError;
  t.equal(err.code, 'CONFIG_INVALID');
  t.same([...new Set(err.problems.map((p) => p.setting))].sort(), [
    '--http-ports',
    '--http-rules',
    '--jwt-audience',
    '--jwt-jwks',
  ]);
  const json = t.throws(() => loadAgentConfig({ ...base, httpRules: '[' }, {})) as ConfigError;
  t.same(
    json.problems.map((p) => p.setting),
    ['--http-rules'],
  );
});

t.test('the event queue size comes from flags or env, 0 turning forwarding off', async (t) => {
  t.equal(loadAgentConfig(base, {}).events.queueSize, 1000);
  t.equal(loadAgentConfig(base, { PALISADE_EVENTS_QUEUE_SIZE: '0' }).events.queueSize, 0);
  t.equal(
    loadAgentConfig({ ...base, eventsQueueSize: '50' }, { PALISADE_EVENTS_QUEUE_SIZE: '9' }).events
      .queueSize,
    50,
  );
  for (const bad of ['-1', 'many', '100001']) {
    const err = t.throws(() => loadAgentConfig({ ...base, eventsQueueSize: bad }, {})) as
      ConfigError | undefined;
    t.match(err?.problems, [{ setting: '--events-queue-size', value: bad }]);
  }
});

t.test('peer multiplexing is on unless flags or env turn it off', async (t) => {
  t.equal(loadAgentConfig(base, {}).peer.isMuxOn, true);
  t.equal(loadAgentConfig(base, { PALISADE_PEER_MUX: 'off' }).peer.isMuxOn, false);
  t.equal(
    loadAgentConfig({ ...base, peerMux: 'on' }, { PALISADE_PEER_MUX: 'off' }).peer.isMuxOn,
    true,
  );
  const err = t.throws(() => loadAgentConfig(base, { PALISADE_PEER_MUX: 'maybe' })) as
    ConfigError | undefined;
  t.match(err?.problems, [{ setting: '--peer-mux', value: 'maybe' }]);
});
