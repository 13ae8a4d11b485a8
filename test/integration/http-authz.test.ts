// Agents on loopback with a real CA, mutual TLS and an HTTP policy on orders:
// web calls orders through its agent with OAuth 2.0 access tokens made here
// with jose. It guarantees that only requests whose token verifies and
// carries the rule's scope and client reach the application, that every
// kind of bad token is answered 401 and missing rights 403 without the
// application seeing the request, that forwarded x-palisade-* headers cannot
// be forged, that keys rotate through the JWKS endpoint, that an issuer
// whose JWKS is unreachable fails closed, and that `/why` names the rule.
import { createServer, request, Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  UnsecuredJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import { createHmac } from 'node:crypto';
import { makeCaDir, startTestCa } from '../helpers/ca-fixture.js';
import { eventually, startMeshAgent } from '../helpers/mesh-fixture.js';

const TD = 'mesh.test';
const ISSUER = 'https://issuer.example';
const AUDIENCE = 'orders';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  spkiPem: string;
}

async function makeKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { kid, privateKey, publicJwk, spkiPem: await exportSPKI(publicKey) };
}

function jwks(...keys: SigningKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.publicJwk) });
}

async function token(key: SigningKey, claims: JWTPayload = {}, kid = key.kid): Promise<string> {
  const nowSeconds = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'user-42',
    client_id: 'checkout',
    scope: 'orders.read orders.write',
    iat: nowSeconds,
    exp: nowSeconds + 600,
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid })
    .sign(key.privateKey);
}

/** An HTTP application that records what reaches it and echoes the forwarded facts. */
async function startHttpApp(t: Test): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, url: req.url }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, seen };
}

/** A JWKS endpoint whose document the test can change; counts fetches. */
async function startJwksServer(t: Test, initial: string) {
  const state = { body: initial, fetches: 0 };
  const server = createServer((_req, res) => {
    state.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(state.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, state };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  reusedSocket: boolean;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
t.teardown(() => keepAlive.destroy());

function call(
  port: number,
  path: string,
  options: {
    method?: string;
    token?: string;
    headers?: Record<string, string>;
    body?: string;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
    const req = request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: keepAlive },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
            reusedSocket: req.reusedSocket,
          });
        });
      },
    );
    req.once('error', reject);
    req.end(options.body);
  });
}

function policyYaml(jwksSource: string): string {
  return [
    'allow: [ns/shop/sa/web]',
    'http:',
    `  jwt: { issuer: ${ISSUER}, audience: ${AUDIENCE}, jwks: "${jwksSource}" }`,
    '  rules:',
    '    - { methods: [GET], path: /orders, prefix: true, scopes: [orders.read] }',
    '    - { methods: [POST], path: /orders, scopes: [orders.write], clients: [checkout] }',
    '    - { path: /healthz, anonymous: true }',
    '',
  ].join('\n');
}

const caDir = makeCaDir(TD);
t.teardown(() => caDir.remove());
const env = await startTestCa(caDir.dir);
t.teardown(() => env.ca.stop());

const key1 = await makeKey('key-1');
const key2 = await makeKey('key-2');
const stranger = await makeKey('key-1');
const jwksFile = join(caDir.dir, 'jwks.json');
writeFileSync(jwksFile, jwks(key1));
const policyFile = join(caDir.dir, 'orders-http.yaml');
writeFileSync(policyFile, policyYaml(jwksFile));

const ordersApp = await startHttpApp(t);
const orders = await startMeshAgent(t, env, caDir.dir, {
  ns: 'shop',
  sa: 'orders',
  appPort: ordersApp.port,
  flags: { policyFile },
});
const toOrders = `0=127.0.0.1:${orders.inboundPort}@${orders.id}`;
const web = await startMeshAgent(t, env, caDir.dir, {
  ns: 'shop',
  sa: 'web',
  appPort: ordersApp.port,
  flags: { upstream: [toOrders] },
});
const webPort = web.upstreamPort();
const webId = web.id;

/** Calls through web's agent and asserts the app saw nothing new when refused. */
async function refused(
  t: Test,
  path: string,
  options: Parameters<typeof call>[2],
  status: number,
  reason: string,
): Promise<Answer> {
  const before = ordersApp.seen.length;
  const answer = await call(webPort, path, options);
  t.equal(answer.status, status, `answered ${status}`);
  t.equal(answer.body['error'], reason, `reason ${reason}`);
  t.equal(ordersApp.seen.length, before, 'the application never sees the request');
  return answer;
}

t.test('a valid token with the scope reaches the app with verified facts', async (t) => {
  const answer = await call(webPort, '/orders/7?x=1', { token: await token(key1) });
  t.equal(answer.status, 200);
  const seen = ordersApp.seen.at(-1) as Seen;
  t.equal(seen.url, '/orders/7?x=1');
  t.equal(seen.headers['x-palisade-peer-id'], webId);
  t.equal(seen.headers['x-palisade-sub'], 'user-42');
  t.equal(seen.headers['x-palisade-client-id'], 'checkout');
  t.equal(seen.headers['x-palisade-scope'], 'orders.read orders.write');
  t.ok(seen.headers['authorization'], 'the token itself is passed on to the app');
});

t.test('keep-alive requests share one connection through the agents', async (t) => {
  const bearer = await token(key1);
  await call(webPort, '/orders', { token: bearer });
  const second = await call(webPort, '/orders', { token: bearer });
  const third = await call(webPort, '/orders', { token: bearer, method: 'POST', body: '{"n":1}' });
  t.equal(second.status, 200);
  t.equal(third.status, 200);
  t.ok(second.reusedSocket && third.reusedSocket, 'the client connection was reused');
});

t.test('forged x-palisade-* headers are stripped and replaced', async (t) => {
  await call(webPort, '/orders', {
    token: await token(key1, { scope: 'orders.read', client_id: 'mobile' }),
    headers: {
      'x-palisade-sub': 'admin',
      'x-palisade-scope': 'orders.admin',
      'x-palisade-peer-id': 'spiffe://mesh.test/ns/ops/sa/root',
      'x-palisade-anything': 'forged',
    },
  });
  const seen = ordersApp.seen.at(-1) as Seen;
  t.equal(seen.headers['x-palisade-sub'], 'user-42');
  t.equal(seen.headers['x-palisade-scope'], 'orders.read');
  t.equal(seen.headers['x-palisade-client-id'], 'mobile');
  t.equal(seen.headers['x-palisade-peer-id'], webId);
  t.equal(seen.headers['x-palisade-anything'], undefined);
});

t.test('a valid token without the scope is refused 403 and logged', async (t) => {
  const answer = await refused(
    t,
    '/orders',
    { token: await token(key1, { scope: 'profile', sub: 'user-7', client_id: 'mobile' }) },
    403,
    'missing-scope',
  );
  t.equal(answer.body['missing_scope'], 'orders.read');
  t.equal(answer.body['rule'], 'rules[0]');
  t.match(answer.headers['www-authenticate'], /insufficient_scope/);
  t.ok(
    await eventually(() =>
      orders.captured
        .events('http.denied')
        .some(
          (e) =>
            e['reason'] === 'missing-scope' &&
            e['sub'] === 'user-7' &&
            e['client_id'] === 'mobile' &&
            e['missing_scope'] === 'orders.read' &&
            e['rule'] === 'rules[0]' &&
            e['peer_id'] === webId,
        ),
    ),
    'http.denied event names client, subject, scope and rule',
  );
  t.notOk(JSON.stringify(orders.captured.lines).includes('eyJ'), 'no token is logged');
});

t.test('scopes may come as an scp list', async (t) => {
  const answer = await call(webPort, '/orders', {
    token: await token(key1, { scope: undefined, scp: ['orders.read'] }),
  });
  t.equal(answer.status, 200);
});

t.test('a client outside the rule is refused 403', async (t) => {
  await refused(
    t,
    '/orders',
    { method: 'POST', token: await token(key1, { client_id: 'mobile' }) },
    403,
    'client-not-allowed',
  );
});

t.test('no token is answered 401 with a bare Bearer challenge', async (t) => {
  const answer = await refused(t, '/orders', {}, 401, 'token-missing');
  t.equal(answer.headers['www-authenticate'], 'Bearer');
});

t.test('an anonymous rule needs no token', async (t) => {
  t.equal((await call(webPort, '/healthz')).status, 200);
});

t.test('a request no rule matches is refused 403', async (t) => {
  await refused(t, '/admin', { token: await token(key1) }, 403, 'no-matching-rule');
  await refused(
    t,
    '/orders',
    { method: 'DELETE', token: await token(key1) },
    403,
    'no-matching-rule',
  );
  await refused(t, '/ordersecret', { token: await token(key1) }, 403, 'no-matching-rule');
});

t.test('a path that could be resolved past the rules is refused 400', async (t) => {
  await refused(t, '/healthz/../orders', {}, 400, 'bad-path');
  await refused(t, '/healthz/%2e%2e/orders', {}, 400, 'bad-path');
});

t.test('bad tokens are answered 401 invalid_token with the reason', async (t) => {
  const nowSeconds = Math.floor(Date.now() / 1000);
  const good = await token(key1);
  const [head, payload, signature] = good.split('.') as [string, string, string];
  const flipped =
    signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
  const hmacHeader = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'key-1' })).toString(
    'base64url',
  );
  const hmacSignature = createHmac('sha256', key1.spkiPem)
    .update(`${hmacHeader}.${payload}`)
    .digest('base64url');
  const cases: [string, string, string][] = [
    ['expired', await token(key1, { exp: nowSeconds - 120 }), 'token-expired'],
    ['not yet valid', await token(key1, { nbf: nowSeconds + 600 }), 'token-not-yet-valid'],
    ['wrong issuer', await token(key1, { iss: 'https://evil.example' }), 'wrong-issuer'],
    ['wrong audience', await token(key1, { aud: 'billing' }), 'wrong-audience'],
    ['unknown key', await token(key2), 'unknown-key'],
    ['foreign key, known kid', await token(stranger), 'bad-signature'],
    ['tampered signature', `${head}.${payload}.${flipped}`, 'bad-signature'],
    [
      'alg none',
      new UnsecuredJWT({
        iss: ISSUER,
        aud: AUDIENCE,
        exp: nowSeconds + 60,
        scope: 'orders.read',
      }).encode(),
      'alg-not-allowed',
    ],
    ['HMAC with the public key', `${hmacHeader}.${payload}.${hmacSignature}`, 'alg-not-allowed'],
    ['not a JWT', 'abc.def.ghi', 'token-malformed'],
  ];
  for (const [name, bearer, reason] of cases) {
    const answer = await refused(t, '/orders', { token: bearer }, 401, reason);
    t.match(answer.headers['www-authenticate'], /^Bearer error="invalid_token"/, name);
  }
  t.ok(
    await eventually(() =>
      orders.captured.events('http.denied').some((e) => e['reason'] === 'token-expired'),
    ),
  );
});

t.test('denials are counted by reason', async (t) => {
  const metrics = await orders.metrics();
  t.match(metrics, /palisade_agent_http_denials_total\{reason="missing-scope"\} [1-9]/);
  t.match(metrics, /palisade_agent_http_denials_total\{reason="token-missing"\} [1-9]/);
  t.match(metrics, /palisade_agent_http_requests_total\{result="allowed"\} [1-9]/);
});

t.test('/why judges a method, path and token and names the rule', async (t) => {
  const ask = async (query: string) =>
    (await (await orders.admin(`/why?peer=${encodeURIComponent(webId)}&${query}`)).json()) as {
      allowed: boolean;
      http: { allowed: boolean; reason: string; rule: string | null; missingScope: string | null };
    };
  const allowed = await ask(`method=GET&path=/orders/1&token=${await token(key1)}`);
  t.same(
    { allowed: allowed.http.allowed, reason: allowed.http.reason, rule: allowed.http.rule },
    { allowed: true, reason: 'token-accepted', rule: 'rules[0]' },
  );
  const lacking = await ask(`method=GET&path=/orders&token=${await token(key1, { scope: 'x' })}`);
  t.same(
    {
      allowed: lacking.http.allowed,
      reason: lacking.http.reason,
      missing: lacking.http.missingScope,
    },
    { allowed: false, reason: 'missing-scope', missing: 'orders.read' },
  );
  const health = await ask('path=/healthz');
  t.equal(health.http.reason, 'anonymous');
  t.equal(health.http.rule, 'rules[2]');
});

t.test('keys rotate through a JWKS endpoint, with refreshes rate-limited', async (t) => {
  const endpoint = await startJwksServer(t, jwks(key1));
  const policy = join(caDir.dir, 'rotating.yaml');
  writeFileSync(policy, policyYaml(endpoint.url));
  const app = await startHttpApp(t);
  const rotating = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'orders',
    appPort: app.port,
    flags: { policyFile: policy },
  });
  const client = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'web',
    appPort: app.port,
    flags: { upstream: [`0=127.0.0.1:${rotating.inboundPort}@${rotating.id}`] },
  });
  const port = client.upstreamPort();

  t.equal((await call(port, '/orders', { token: await token(key1) })).status, 200);
  endpoint.state.body = jwks(key1, key2);
  t.equal(
    (await call(port, '/orders', { token: await token(key2) })).status,
    200,
    'a token signed with the new key is accepted after one refresh',
  );
  const fetches = endpoint.state.fetches;
  t.equal(fetches, 2);
  for (let i = 0; i < 5; i++) {
    const answer = await call(port, '/orders', { token: await token(key2, {}, `made-up-${i}`) });
    t.equal(answer.body['error'], 'unknown-key');
  }
  t.equal(endpoint.state.fetches, fetches, 'unknown key ids do not hammer the endpoint');
});

t.test('a JWKS endpoint that is down fails closed with a clear reason', async (t) => {
  const down = await startJwksServer(t, '');
  const url = down.url;
  const policy = join(caDir.dir, 'down.yaml');
  // Port 9 (discard) on loopback refuses connections.
  writeFileSync(policy, policyYaml(url.replace(/:\d+\//, ':9/')));
  const app = await startHttpApp(t);
  const isolated = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'orders',
    appPort: app.port,
    flags: { policyFile: policy },
  });
  const client = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'web',
    appPort: app.port,
    flags: { upstream: [`0=127.0.0.1:${isolated.inboundPort}@${isolated.id}`] },
  });
  const answer = await call(client.upstreamPort(), '/orders', { token: await token(key1) });
  t.equal(answer.status, 503);
  t.equal(answer.body['error'], 'jwks-unavailable');
  t.equal(app.seen.length, 0, 'the application never sees the request');
  t.equal(
    (await call(client.upstreamPort(), '/healthz')).status,
    200,
    'anonymous rules still work',
  );
});

const FLAG_RULES = JSON.stringify([
  { methods: ['GET'], path: '/orders', prefix: true, scopes: ['orders.read'] },
  { path: '/healthz', anonymous: true },
]);

/** Starts an agent for orders in front of a fresh app, with HTTP mode from flags only. */
async function startFlagsAgent(t: Test, httpPorts: (appPort: number) => string) {
  const app = await startHttpApp(t);
  const agent = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'orders',
    appPort: app.port,
    flags: {
      allow: ['ns/shop/sa/web'],
      jwtIssuer: ISSUER,
      jwtAudience: `other,${AUDIENCE}`,
      jwtJwks: jwksFile,
      httpRules: FLAG_RULES,
      httpPorts: httpPorts(app.port),
    },
  });
  const client = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'web',
    appPort: app.port,
    flags: { upstream: [`0=127.0.0.1:${agent.inboundPort}@${agent.id}`] },
  });
  return { app, port: client.upstreamPort() };
}

t.test('an agent configured by flags only judges requests on its app port', async (t) => {
  const { app, port } = await startFlagsAgent(t, (appPort) => `${appPort}`);
  const missing = await call(port, '/orders');
  t.equal(missing.status, 401, 'no token is refused');
  t.equal(app.seen.length, 0, 'the application never sees the refused request');
  t.equal((await call(port, '/orders', { token: await token(key1, { scope: 'x' }) })).status, 403);
  const allowed = await call(port, '/orders/1', { token: await token(key1) });
  t.equal(allowed.status, 200, 'a token with the scope passes');
  t.equal(app.seen.at(-1)?.headers['x-palisade-peer-id'], webId);
  t.equal((await call(port, '/healthz')).status, 200, 'the anonymous rule from flags applies');
});

t.test('a port not in --http-ports keeps the raw splice', async (t) => {
  // The app port is not listed (another port is), so its connections are not judged.
  const { app, port } = await startFlagsAgent(t, (appPort) => `${appPort === 1 ? 2 : 1}`);
  const answer = await call(port, '/orders', { headers: { 'x-palisade-peer-id': 'forged' } });
  t.equal(answer.status, 200, 'no token needed: requests are not judged');
  t.equal(app.seen.length, 1);
  t.equal(app.seen[0]?.headers['x-palisade-peer-id'], 'forged', 'headers pass untouched');
});

t.test('http flags are refused with a policy file that has its own http section', async (t) => {
  const app = await startHttpApp(t);
  await t.rejects(
    startMeshAgent(t, env, caDir.dir, {
      ns: 'shop',
      sa: 'orders',
      appPort: app.port,
      flags: {
        policyFile,
        httpRules: FLAG_RULES,
        jwtIssuer: ISSUER,
        jwtAudience: AUDIENCE,
        jwtJwks: jwksFile,
      },
    }),
    { code: 'CONFIG_INVALID' },
  );
});
