import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import t, { type Test } from 'tap';

import {
  apiServerUrlFromEnv,
  generateJoinToken,
  hashJoinToken,
  isJoinTokenShaped,
  SaTokenVerifier,
  type AuthnResult,
} from '../../../certs/authn/index.js';
import {
  basicConstraintsDer,
  derTlv,
  extensionDer,
  extKeyUsageDer,
  keyUsageDer,
  KEY_USAGE_BIT,
  nameDer,
  OID,
} from '../../../certs/x509/asn1.js';
import { buildCertificate, issuerSigning } from '../../../certs/x509/certificate.js';
import { TAG } from '../../../certs/x509/der-reader.js';
import {
  createRootCertificate,
  generateKeyPairSync,
  loadIssuer,
} from '../../../certs/x509/index.js';
import { spkiOf } from '../../../certs/x509/spki.js';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const NOW_S = 1_900_000_000;
const now = (): Date => new Date(NOW_S * 1000);
const ALICE_ID = 'spiffe://cluster.local/ns/shop/sa/alice';

interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function makeKey(alg: 'RS256' | 'ES256', kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function writeJwks(file: string, keys: SigningKey[]): void {
  fs.writeFileSync(file, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
}

function claims(overrides: JWTPayload = {}): JWTPayload {
  return {
    iss: ISSUER,
    aud: ['palisade-ca', 'https://kubernetes.default.svc'],
    sub: 'system:serviceaccount:shop:alice',
    iat: NOW_S - 60,
    nbf: NOW_S - 60,
    exp: NOW_S + 600,
    'kubernetes.io': {
      namespace: 'shop',
      serviceaccount: { name: 'alice', uid: 'u-1' },
      pod: { name: 'alice-7d9f', uid: 'p-1' },
    },
    ...overrides,
  };
}

async function sign(key: SigningKey, payload: JWTPayload = claims()): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .sign(key.privateKey);
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function codeOf(result: AuthnResult): string {
  return result.ok ? 'OK' : result.code;
}

const rsa = await makeKey('RS256', 'rsa-1');
const ec = await makeKey('ES256', 'ec-1');
const dir = t.testdir();
const jwksFile = path.join(dir, 'jwks.json');
writeJwks(jwksFile, [rsa, ec]);
const verifier = new SaTokenVerifier({
  jwks: jwksFile,
  issuer: ISSUER,
  trustDomain: 'cluster.local',
  now,
});

t.test('accepts an RS256 token and maps it to the workload SPIFFE ID', async (t) => {
  const result = await verifier.verify(await sign(rsa));
  t.ok(result.ok);
  if (!result.ok) return;
  t.equal(result.spiffeId, ALICE_ID);
  t.match(result.detail, { namespace: 'shop', service_account: 'alice', pod: 'alice-7d9f' });
});

t.test('accepts an ES256 token without the kubernetes.io claim', async (t) => {
  const result = await verifier.verify(await sign(ec, claims({ 'kubernetes.io': undefined })));
  t.equal(codeOf(result), 'OK');
});

t.test('tolerates 30 seconds of clock skew and no more', async (t) => {
  t.equal(codeOf(await verifier.verify(await sign(rsa, claims({ exp: NOW_S - 20 })))), 'OK');
  t.equal(
    codeOf(await verifier.verify(await sign(rsa, claims({ exp: NOW_S - 31 })))),
    'TOKEN_EXPIRED',
  );
});

t.test('refuses a token that is not valid yet', async (t) => {
  const token = await sign(rsa, claims({ nbf: NOW_S + 120 }));
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_NOT_YET_VALID');
});

t.test('refuses a token without the palisade-ca audience', async (t) => {
  const token = await sign(rsa, claims({ aud: 'https://kubernetes.default.svc' }));
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_AUDIENCE');
});

t.test('refuses a token from another issuer', async (t) => {
  const token = await sign(rsa, claims({ iss: 'https://evil.example' }));
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_ISSUER');
});

t.test('refuses a subject that is not a service account', async (t) => {
  const token = await sign(rsa, claims({ sub: 'system:node:worker-1' }));
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_SUBJECT');
});

t.test('refuses a subject that disagrees with the kubernetes.io claim', async (t) => {
  const token = await sign(rsa, claims({ sub: 'system:serviceaccount:shop:admin' }));
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_SUBJECT');
});

t.test('refuses a token signed by a key the issuer does not hold', async (t) => {
  const impostor = await makeKey('RS256', 'rsa-1');
  t.equal(codeOf(await verifier.verify(await sign(impostor))), 'TOKEN_SIGNATURE');
});

t.test('refuses malformed, oversized and exp-less tokens', async (t) => {
  t.equal(codeOf(await verifier.verify('')), 'TOKEN_MALFORMED');
  t.equal(codeOf(await verifier.verify('a.b.c')), 'TOKEN_MALFORMED');
  t.equal(codeOf(await verifier.verify('x'.repeat(9000))), 'TOKEN_MALFORMED');
  const big = await sign(rsa, claims({ filler: 'x'.repeat(9000) }));
  t.equal(codeOf(await verifier.verify(big)), 'TOKEN_MALFORMED');
  t.equal(
    codeOf(await verifier.verify(await sign(rsa, claims({ exp: undefined })))),
    'TOKEN_MALFORMED',
  );
});

t.test('refuses an unsigned alg none token', async (t) => {
  const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_ALG');
});

t.test('refuses an HS256 token even when keyed with public key material', async (t) => {
  const secret = new TextEncoder().encode(JSON.stringify(rsa.jwk));
  const token = await new SignJWT(claims())
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
    .sign(secret);
  t.equal(codeOf(await verifier.verify(token)), 'TOKEN_ALG');
});

t.test('picks up a rotated JWKS file', async (t) => {
  const file = path.join(t.testdir(), 'jwks.json');
  writeJwks(file, [rsa]);
  const rotating = new SaTokenVerifier({
    jwks: file,
    issuer: ISSUER,
    trustDomain: 'cluster.local',
    now,
  });
  const next = await makeKey('ES256', 'ec-2');
  const token = await sign(next);
  t.equal(codeOf(await rotating.verify(await sign(rsa))), 'OK');
  t.equal(codeOf(await rotating.verify(token)), 'TOKEN_SIGNATURE');

  writeJwks(file, [next]);
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(file, later, later);
  t.equal(codeOf(await rotating.verify(token)), 'OK');
  t.equal(codeOf(await rotating.verify(await sign(rsa))), 'TOKEN_SIGNATURE');
});

t.test('keeps the last good keys when a rotated JWKS file is unreadable', async (t) => {
  const file = path.join(t.testdir(), 'jwks.json');
  writeJwks(file, [rsa]);
  const rotating = new SaTokenVerifier({
    jwks: file,
    issuer: ISSUER,
    trustDomain: 'cluster.local',
    now,
  });
  t.equal(codeOf(await rotating.verify(await sign(rsa))), 'OK');
  fs.writeFileSync(file, '{"keys": [');
  t.equal(codeOf(await rotating.verify(await sign(rsa))), 'OK');
});

t.test('reports JWKS_UNAVAILABLE when the JWKS file is missing', async (t) => {
  const missing = new SaTokenVerifier({
    jwks: path.join(t.testdir(), 'nope.json'),
    issuer: ISSUER,
    trustDomain: 'cluster.local',
    now,
  });
  t.equal(codeOf(await missing.verify(await sign(rsa))), 'JWKS_UNAVAILABLE');
});

t.test('fetches the JWKS over http', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url !== '/openid/v1/jwks') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [rsa.jwk, ec.jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;

  const remote = new SaTokenVerifier({
    jwks: `http://127.0.0.1:${port}/openid/v1/jwks`,
    issuer: ISSUER,
    trustDomain: 'cluster.local',
    now,
  });
  const result = await remote.verify(await sign(ec));
  t.equal(codeOf(result), 'OK');
  t.equal(result.ok && result.spiffeId, ALICE_ID);

  const broken = new SaTokenVerifier({
    jwks: `http://127.0.0.1:${port}/missing`,
    issuer: ISSUER,
    trustDomain: 'cluster.local',
    now,
  });
  t.equal(codeOf(await broken.verify(await sign(ec))), 'JWKS_UNAVAILABLE');
});

t.test('refuses bad options with one CONFIG_INVALID naming each', async (t) => {
  t.throws(
    () =>
      new SaTokenVerifier({
        jwks: '',
        issuer: '',
        trustDomain: 'Bad Domain',
        clockSkewSeconds: -1,
      }),
    {
      code: 'CONFIG_INVALID',
    },
  );
});

t.test('join tokens have the pjt_ shape and hash to 64 hex digits', async (t) => {
  const token = generateJoinToken();
  t.ok(isJoinTokenShaped(token));
  t.notOk(isJoinTokenShaped(`${token}x`));
  t.notOk(isJoinTokenShaped('pjt_short'));
  t.not(generateJoinToken(), token);
  t.match(hashJoinToken(token), /^[0-9a-f]{64}$/);
  t.equal(hashJoinToken(token), hashJoinToken(token));
});

const API_TOKEN = 'ca-pod-token';

/** A fake API server: OIDC discovery and JWKS over HTTPS, behind a bearer token. */
interface FakeApiServer {
  url: string;
  port: number;
  keys: SigningKey[];
  /** The jwks_uri the discovery document advertises; default: this server. */
  jwksUri?: string;
  requests: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

// The API server's TLS identity: a throwaway root and a serving certificate
// for 127.0.0.1 (an iPAddress SAN, which the SVID helpers never make).
const apiPki = (() => {
  const rootKey = generateKeyPairSync('ecdsa-p256');
  const root = createRootCertificate({ key: rootKey, trustDomain: 'cluster.local' });
  const { signer, nameDer: issuerName } = issuerSigning(loadIssuer(root.pem, rootKey.privateKey));
  const leafKey = generateKeyPairSync('ecdsa-p256');
  const loopbackSan = derTlv(TAG.SEQUENCE, [derTlv(0x87, [Buffer.from([127, 0, 0, 1])])]);
  const leaf = buildCertificate(
    {
      subjectDer: nameDer([[OID.commonName, 'kube-apiserver']]),
      spkiDer: spkiOf(leafKey.publicKey),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
      extensions: [
        basicConstraintsDer(false),
        keyUsageDer([KEY_USAGE_BIT.digitalSignature]),
        extKeyUsageDer([OID.serverAuth]),
        extensionDer(OID.subjectAltName, false, loopbackSan),
      ],
    },
    signer,
    issuerName,
  );
  const caFile = path.join(dir, 'api-ca.crt');
  fs.writeFileSync(caFile, root.pem);
  const tokenFile = path.join(dir, 'api-token');
  fs.writeFileSync(tokenFile, `${API_TOKEN}\n`);
  const keyPem = leafKey.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  return { certPem: leaf.pem, keyPem, caFile, tokenFile };
})();

async function startFakeApiServer(t: Test, keys: SigningKey[]): Promise<FakeApiServer> {
  const server = https.createServer({ cert: apiPki.certPem, key: apiPki.keyPem }, (req, res) => {
    fake.requests += 1;
    if (req.headers.authorization !== `Bearer ${API_TOKEN}`) {
      res.writeHead(401).end('{"kind":"Status","code":401}');
      return;
    }
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer: ISSUER, jwks_uri: fake.jwksUri ?? `${fake.url}/openid/v1/jwks` }
        : req.url === '/openid/v1/jwks'
          ? { keys: fake.keys.map((k) => k.jwk) }
          : undefined;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  const listen = (port: number) =>
    new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const fake: FakeApiServer = {
    url: `https://127.0.0.1:${port}`,
    port,
    keys,
    requests: 0,
    start: () => listen(port),
    stop: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  t.teardown(() => fake.stop());
  return fake;
}

function discoveringVerifier(fake: FakeApiServer, clock: { ms: number }, tokenFile?: string) {
  return new SaTokenVerifier({
    jwks: 'kubernetes',
    trustDomain: 'cluster.local',
    now,
    discovery: {
      apiServerUrl: fake.url,
      caFile: apiPki.caFile,
      tokenFile: tokenFile ?? apiPki.tokenFile,
      nowMs: () => clock.ms,
    },
  });
}

t.test('discovers the issuer and its keys from the API server', async (t) => {
  const fake = await startFakeApiServer(t, [rsa]);
  const verifier = discoveringVerifier(fake, { ms: 0 });

  const result = await verifier.verify(await sign(rsa));
  t.same(result.ok ? [result.spiffeId, result.detail.issuer] : result, [ALICE_ID, ISSUER]);
  t.equal(
    codeOf(await verifier.verify(await sign(rsa, claims({ iss: 'https://evil.example' })))),
    'TOKEN_ISSUER',
  );
  t.equal(fake.requests, 2, 'one discovery and one JWKS fetch, then cached');
});

t.test('reads the keys from the API server when jwks_uri names another origin', async (t) => {
  const fake = await startFakeApiServer(t, [rsa]);
  fake.jwksUri = 'https://oidc.example.invalid/id/cluster/keys';
  const verifier = discoveringVerifier(fake, { ms: 0 });

  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'OK');
  t.equal(fake.requests, 2, 'both requests, with the token, went to the API server');
});

t.test('picks up a rotated issuer key through a rate-limited unknown-kid refetch', async (t) => {
  const fake = await startFakeApiServer(t, [rsa]);
  const clock = { ms: 0 };
  const verifier = discoveringVerifier(fake, clock);
  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'OK');

  fake.keys = [rsa, ec];
  clock.ms += 5_000;
  t.equal(codeOf(await verifier.verify(await sign(ec))), 'TOKEN_SIGNATURE', 'within the cooldown');
  t.equal(fake.requests, 2, 'no refetch within the cooldown');

  clock.ms += 30_000;
  t.equal(codeOf(await verifier.verify(await sign(ec))), 'OK');
  t.equal(fake.requests, 4);
});

t.test('refetches the keys once they are ten minutes old', async (t) => {
  const fake = await startFakeApiServer(t, [rsa, ec]);
  const clock = { ms: 0 };
  const verifier = discoveringVerifier(fake, clock);
  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'OK');

  fake.keys = [ec];
  clock.ms += 10 * 60_000;
  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'TOKEN_SIGNATURE', 'dropped key');
  t.equal(fake.requests, 4);
});

t.test('reports JWKS_UNAVAILABLE while the API server is down and recovers', async (t) => {
  const fake = await startFakeApiServer(t, [rsa]);
  const clock = { ms: 0 };
  const verifier = discoveringVerifier(fake, clock);
  await fake.stop();

  const down = await verifier.verify(await sign(rsa));
  t.equal(codeOf(down), 'JWKS_UNAVAILABLE');
  t.match(down.ok ? '' : down.reason, `${fake.url}/.well-known/openid-configuration`);

  await fake.start();
  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'OK');
});

t.test('keeps the last good keys when a refetch fails', async (t) => {
  const fake = await startFakeApiServer(t, [rsa]);
  const clock = { ms: 0 };
  const verifier = discoveringVerifier(fake, clock);
  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'OK');

  await fake.stop();
  clock.ms += 11 * 60_000;
  t.equal(codeOf(await verifier.verify(await sign(rsa))), 'OK');
});

t.test('names the URL and the 401 status when the bearer token is refused', async (t) => {
  const fake = await startFakeApiServer(t, [rsa]);
  const wrongToken = path.join(t.testdir(), 'token');
  fs.writeFileSync(wrongToken, 'stolen-or-stale');
  const verifier = discoveringVerifier(fake, { ms: 0 }, wrongToken);

  const result = await verifier.verify(await sign(rsa));
  t.equal(codeOf(result), 'JWKS_UNAVAILABLE');
  t.match(result.ok ? '' : result.reason, `${fake.url}/.well-known/openid-configuration`);
  t.match(result.ok ? '' : result.reason, /status 401/);
});

t.test('finds the API server from the in-cluster environment', async (t) => {
  t.equal(apiServerUrlFromEnv({}), 'https://kubernetes.default.svc');
  t.equal(
    apiServerUrlFromEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }),
    'https://10.96.0.1:443',
  );
  t.equal(apiServerUrlFromEnv({ KUBERNETES_SERVICE_HOST: 'fd00::1' }), 'https://[fd00::1]:443');
});

t.test('needs no issuer with discovery but still needs one for a JWKS file', async (t) => {
  t.doesNotThrow(() => new SaTokenVerifier({ jwks: 'oidc', trustDomain: 'cluster.local' }));
  t.throws(() => new SaTokenVerifier({ jwks: jwksFile, trustDomain: 'cluster.local' }), {
    code: 'CONFIG_INVALID',
  });
});
