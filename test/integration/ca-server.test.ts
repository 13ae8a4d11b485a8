// The CA server end to end: a real store in a temp dir, the real gRPC server on
// loopback port 0, real TLS clients. It guarantees that every proof of identity
// is checked, that bad input is refused with the right status and changes
// nothing, that revocations reach every watcher at once, and that state
// survives a restart.
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SignJWT, exportJWK, generateKeyPair as joseKeyPair } from 'jose';
import t, { type Test } from 'tap';
import { MAX_MESSAGE_BYTES } from '../../certs/ca.js';
import { CaClientError, type CaClient } from '../../certs/client/index.js';
import { CaStore } from '../../certs/store/index.js';
import { createCsr, generateKeyPairSync, type KeyPair } from '../../certs/x509/index.js';
import type { SignResponse, StoredEventMessage, TrustUpdate } from '../../proto/index.js';
import { makeCaDir, startTestCa, type TestCa } from '../helpers/ca-fixture.js';
import { openssl } from '../helpers/openssl.js';

const TD = 'test.local';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;

const caDir = makeCaDir(TD);
t.teardown(() => caDir.remove());

// Service-account token issuer: an RSA key published as a JWKS file.
const saKeys = await joseKeyPair('RS256');
const jwksPath = join(caDir.dir, 'sa-jwks.json');
writeFileSync(
  jwksPath,
  JSON.stringify({ keys: [{ ...(await exportJWK(saKeys.publicKey)), kid: 'k1', alg: 'RS256' }] }),
);
const SA_ISSUER = 'https://kubernetes.default.svc';

// This file's CA signs on a worker thread, as `palisade ca serve` does by default.
const caOptions = { saJwks: jwksPath, saIssuer: SA_ISSUER, signWorkers: 1 };
let env: TestCa = await startTestCa(caDir.dir, caOptions);
// Every CA started in this file, so events can be checked across the restart.
const started: TestCa[] = [env];
const eventsNamed = (name: string) => started.flatMap((e) => e.captured.events(name));
let admin: CaClient = env.admin();
t.teardown(async () => {
  admin.close();
  await env.ca.stop();
});

function credentialOf(key: KeyPair, signed: SignResponse) {
  return {
    keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certChainPem: signed.certChainPem.join(''),
  };
}

async function expectFailure(
  t: Test,
  promise: Promise<unknown>,
  code: string,
  grpcCode: grpc.status,
): Promise<CaClientError> {
  try {
    await promise;
  } catch (err) {
    t.type(err, CaClientError);
    const e = err as CaClientError;
    t.equal(e.code, code, `code ${code}`);
    t.equal(e.grpcCode, grpcCode, `gRPC status ${grpc.status[grpcCode]}`);
    return e;
  }
  t.fail(`expected ${code}`);
  throw new Error('unreachable');
}

function saToken(claims: { sub?: string; aud?: string; iss?: string; expSeconds?: number }) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'web' } } })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setSubject(claims.sub ?? 'system:serviceaccount:shop:web')
    .setAudience(claims.aud ?? 'palisade-ca')
    .setIssuer(claims.iss ?? SA_ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expSeconds ?? 600))
    .sign(saKeys.privateKey);
}

function countCerts(): number {
  const store = CaStore.open(join(caDir.dir, 'ca.db'));
  try {
    return store.countCerts().total;
  } finally {
    store.close();
  }
}

t.test('admin Issue returns a chain OpenSSL accepts for client and server use', async (t) => {
  const key = generateKeyPairSync('ecdsa-p256');
  const signed = await admin.issue({
    spiffeId: WEB,
    csrPem: createCsr({ key, spiffeId: WEB }),
    ttlSeconds: 600,
  });
  t.equal(signed.spiffeId, WEB);
  t.equal(signed.certChainPem.length, 2);
  const leaf = new X509Certificate(signed.certChainPem[0] as string);
  t.equal(leaf.subjectAltName, `URI:${WEB}`);
  for (const purpose of ['sslclient', 'sslserver']) {
    const result = openssl(
      [
        'verify',
        '-x509_strict',
        '-purpose',
        purpose,
        '-CAfile',
        '{root.pem}',
        '-untrusted',
        '{inter.pem}',
        '{leaf.pem}',
      ],
      {
        'root.pem': signed.trustBundlePem.join(''),
        'inter.pem': signed.certChainPem[1] as string,
        'leaf.pem': signed.certChainPem[0] as string,
      },
    );
    t.ok(result.ok, `openssl verify -purpose ${purpose}: ${result.output.trim()}`);
  }
});

t.test(
  'Sign with a join token issues once, then refuses the reused token and changes nothing',
  async (t) => {
    const created = await admin.createJoinToken({ spiffeId: ORDERS, ttlSeconds: 600 });
    t.match(created.token, /^pjt_/);
    const client = env.client();
    t.teardown(() => client.close());
    const key = generateKeyPairSync('ecdsa-p256');
    const csrPem = createCsr({ key, spiffeId: ORDERS });
    const signed = await client.sign({ csrPem, joinToken: created.token });
    t.equal(signed.spiffeId, ORDERS);
    const before = countCerts();
    await expectFailure(
      t,
      client.sign({ csrPem, joinToken: created.token }),
      'TOKEN_USED',
      grpc.status.UNAUTHENTICATED,
    );
    await expectFailure(
      t,
      client.sign({ csrPem, joinToken: 'pjt_nonsense' }),
      'TOKEN_UNKNOWN',
      grpc.status.UNAUTHENTICATED,
    );
    t.equal(countCerts(), before, 'no certificate recorded for refused requests');
    t.ok(
      env.captured.events('csr.rejected').some((e) => e['err_code'] === 'TOKEN_USED'),
      'csr.rejected event logged',
    );
  },
);

t.test(
  'a join token for one identity cannot sign another, and is not spent by the attempt',
  async (t) => {
    const created = await admin.createJoinToken({ spiffeId: ORDERS, ttlSeconds: 600 });
    const client = env.client();
    t.teardown(() => client.close());
    const key = generateKeyPairSync('ecdsa-p256');
    await expectFailure(
      t,
      client.sign({ csrPem: createCsr({ key, spiffeId: WEB }), joinToken: created.token }),
      'CSR_SAN_MISMATCH',
      grpc.status.PERMISSION_DENIED,
    );
    const signed = await client.sign({
      csrPem: createCsr({ key, spiffeId: ORDERS }),
      joinToken: created.token,
    });
    t.equal(signed.spiffeId, ORDERS, 'the token still works for its own identity');
  },
);

t.test(
  'Sign refuses CSRs with extra SANs, garbage, no proof, and oversized messages',
  async (t) => {
    const client = env.client();
    t.teardown(() => client.close());
    const created = await admin.createJoinToken({ spiffeId: WEB, ttlSeconds: 600 });
    const key = generateKeyPairSync('ecdsa-p256');
    const keyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const extra = openssl(
      [
        'req',
        '-new',
        '-key',
        '{k.pem}',
        '-subj',
        '/O=x',
        '-addext',
        `subjectAltName=URI:${WEB},DNS:web.shop.svc`,
      ],
      { 'k.pem': keyPem },
    );
    t.ok(extra.ok, 'openssl made a CSR with a DNS SAN');
    await expectFailure(
      t,
      client.sign({ csrPem: extra.output, joinToken: created.token }),
      'CSR_SAN_INVALID',
      grpc.status.INVALID_ARGUMENT,
    );
    await expectFailure(
      t,
      client.sign({ csrPem: 'not a csr', joinToken: created.token }),
      'CSR_MALFORMED',
      grpc.status.INVALID_ARGUMENT,
    );
    await expectFailure(
      t,
      client.sign({ csrPem: createCsr({ key, spiffeId: WEB }) }),
      'PROOF_MISSING',
      grpc.status.UNAUTHENTICATED,
    );
    const huge = 'A'.repeat(MAX_MESSAGE_BYTES + 1024);
    await expectFailure(
      t,
      client.sign({ csrPem: huge, joinToken: created.token }),
      'RESOURCE_EXHAUSTED',
      grpc.status.RESOURCE_EXHAUSTED,
    );
    const signed = await client.sign({
      csrPem: createCsr({ key, spiffeId: WEB }),
      joinToken: created.token,
    });
    t.equal(signed.spiffeId, WEB, 'the CA still serves and the token was not spent');
  },
);

t.test(
  'Sign with a service-account token issues the namespace/service-account identity',
  async (t) => {
    const client = env.client();
    t.teardown(() => client.close());
    const key = generateKeyPairSync('rsa-2048');
    const csrPem = createCsr({ key, spiffeId: WEB });
    const signed = await client.sign({ csrPem, serviceAccountToken: await saToken({}) });
    t.equal(signed.spiffeId, WEB);
    await expectFailure(
      t,
      client.sign({ csrPem, serviceAccountToken: await saToken({ aud: 'other' }) }),
      'TOKEN_AUDIENCE',
      grpc.status.UNAUTHENTICATED,
    );
    await expectFailure(
      t,
      client.sign({ csrPem, serviceAccountToken: await saToken({ expSeconds: -120 }) }),
      'TOKEN_EXPIRED',
      grpc.status.UNAUTHENTICATED,
    );
    await expectFailure(
      t,
      client.sign({ csrPem, serviceAccountToken: await saToken({ iss: 'https://evil' }) }),
      'TOKEN_ISSUER',
      grpc.status.UNAUTHENTICATED,
    );
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('system:serviceaccount:shop:web')
      .setAudience('palisade-ca')
      .setIssuer(SA_ISSUER)
      .setExpirationTime('10m')
      .sign((await joseKeyPair('RS256')).privateKey);
    await expectFailure(
      t,
      client.sign({ csrPem, serviceAccountToken: forged }),
      'TOKEN_SIGNATURE',
      grpc.status.UNAUTHENTICATED,
    );
    await expectFailure(
      t,
      client.sign({
        csrPem: createCsr({ key, spiffeId: ORDERS }),
        serviceAccountToken: await saToken({}),
      }),
      'CSR_SAN_MISMATCH',
      grpc.status.PERMISSION_DENIED,
    );
  },
);

t.test('lifetimes are clamped to the CA range', async (t) => {
  const key = generateKeyPairSync('ecdsa-p256');
  const csrPem = createCsr({ key, spiffeId: WEB });
  const long = await admin.issue({ spiffeId: WEB, csrPem, ttlSeconds: 48 * 3600 });
  t.ok(long.notAfterUnixMs - Date.now() <= 24 * 3600 * 1000 + 5000, 'clamped to max 24h');
  const short = await admin.issue({ spiffeId: WEB, csrPem, ttlSeconds: 5 });
  t.ok(short.notAfterUnixMs - Date.now() >= 55 * 1000, 'raised to min 60s');
  const dflt = await admin.issue({ spiffeId: WEB, csrPem, ttlSeconds: 0 });
  t.ok(Math.abs(dflt.notAfterUnixMs - Date.now() - 3600 * 1000) < 10_000, 'default 1h');
});

t.test('renewal works with a current certificate and is refused once it is revoked', async (t) => {
  const key = generateKeyPairSync('ecdsa-p256');
  const first = await admin.issue({
    spiffeId: ORDERS,
    csrPem: createCsr({ key, spiffeId: ORDERS }),
    ttlSeconds: 600,
  });
  const renewer = env.client(credentialOf(key, first));
  t.teardown(() => renewer.close());
  const nextKey = generateKeyPairSync('ecdsa-p256');
  const renewed = await renewer.sign({
    csrPem: createCsr({ key: nextKey, spiffeId: ORDERS }),
    renewal: true,
  });
  t.equal(renewed.spiffeId, ORDERS);
  t.not(renewed.serial, first.serial);
  await expectFailure(
    t,
    renewer.sign({ csrPem: createCsr({ key: nextKey, spiffeId: WEB }), renewal: true }),
    'CSR_SAN_MISMATCH',
    grpc.status.PERMISSION_DENIED,
  );
  await admin.revoke({ serial: first.serial, reason: 'key-compromise' });
  await expectFailure(
    t,
    renewer.sign({ csrPem: createCsr({ key: nextKey, spiffeId: ORDERS }), renewal: true }),
    'CERT_REVOKED',
    grpc.status.PERMISSION_DENIED,
  );
  const anonymous = env.client();
  t.teardown(() => anonymous.close());
  await expectFailure(
    t,
    anonymous.sign({ csrPem: createCsr({ key: nextKey, spiffeId: ORDERS }), renewal: true }),
    'RENEWAL_NO_CERT',
    grpc.status.UNAUTHENTICATED,
  );
});

t.test('admin calls need the admin certificate', async (t) => {
  const key = generateKeyPairSync('ecdsa-p256');
  const signed = await admin.issue({
    spiffeId: WEB,
    csrPem: createCsr({ key, spiffeId: WEB }),
    ttlSeconds: 600,
  });
  const workload = env.client(credentialOf(key, signed));
  const anonymous = env.client();
  t.teardown(() => {
    workload.close();
    anonymous.close();
  });
  await expectFailure(t, workload.status(), 'ADMIN_REQUIRED', grpc.status.PERMISSION_DENIED);
  await expectFailure(
    t,
    anonymous.revoke({ spiffeId: WEB, reason: 'x' }),
    'ADMIN_NO_CERT',
    grpc.status.UNAUTHENTICATED,
  );
  t.ok(env.captured.events('admin.rejected').length >= 2, 'admin.rejected events logged');
  t.equal((await admin.list({ revokedOnly: true })).revokedIds.length, 0, 'nothing was revoked');
});

t.test('revoking an unknown serial is NOT_FOUND and changes nothing', async (t) => {
  const before = env.ca.authority.trust.version;
  await expectFailure(
    t,
    admin.revoke({ serial: 'deadbeef', reason: 'x' }),
    'UNKNOWN_SERIAL',
    grpc.status.NOT_FOUND,
  );
  await expectFailure(
    t,
    admin.revoke({ serial: 'zz-not-hex', reason: 'x' }),
    'REQUEST_INVALID',
    grpc.status.INVALID_ARGUMENT,
  );
  t.equal(env.ca.authority.trust.version, before, 'trust version unchanged');
});

t.test(
  'an identity revocation reaches every watcher within 100 ms and blocks new certificates',
  async (t) => {
    const target = `spiffe://${TD}/ns/shop/sa/revoke-me`;
    const watchers = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const client = env.client();
        const updates: { update: TrustUpdate; atMs: number }[] = [];
        await new Promise<void>((resolve) => {
          const cancel = client.watchTrust(
            0,
            (update) => {
              updates.push({ update, atMs: performance.now() });
              resolve();
            },
            () => undefined,
          );
          t.teardown(() => {
            cancel();
            client.close();
          });
        });
        return updates;
      }),
    );
    const startMs = performance.now();
    const revoked = await admin.revoke({ spiffeId: target, reason: 'decommissioned' });
    await new Promise((r) => setTimeout(r, 150));
    for (const updates of watchers) {
      const hit = updates.find((u) => u.update.revokedIds.includes(target));
      t.ok(hit, 'watcher got the revocation');
      t.equal(hit?.update.version, revoked.trustVersion);
      t.ok(
        (hit?.atMs ?? Infinity) - startMs < 100,
        `arrived in ${((hit?.atMs ?? 0) - startMs).toFixed(1)} ms`,
      );
    }
    const key = generateKeyPairSync('ecdsa-p256');
    await expectFailure(
      t,
      admin.issue({
        spiffeId: target,
        csrPem: createCsr({ key, spiffeId: target }),
        ttlSeconds: 600,
      }),
      'IDENTITY_REVOKED',
      grpc.status.PERMISSION_DENIED,
    );
    t.ok(env.captured.events('identity.revoked').length >= 1, 'identity.revoked event logged');
    await admin.unrevoke({ spiffeId: target });
    const again = await admin.issue({
      spiffeId: target,
      csrPem: createCsr({ key, spiffeId: target }),
      ttlSeconds: 600,
    });
    t.equal(again.spiffeId, target, 'lifting the revocation allows issuance again');
  },
);

t.test(
  'the CRL is signed by the intermediate and lists revoked serials with reasons',
  async (t) => {
    const key = generateKeyPairSync('ecdsa-p256');
    const signed = await admin.issue({
      spiffeId: WEB,
      csrPem: createCsr({ key, spiffeId: WEB }),
      ttlSeconds: 600,
    });
    await admin.revoke({ serial: signed.serial, reason: 'superseded' });
    const crl = await admin.getCrl();
    const verified = openssl(
      ['crl', '-in', '{crl.pem}', '-CAfile', '{ca.pem}', '-verify', '-noout', '-text'],
      {
        'crl.pem': crl.crlPem,
        'ca.pem': (signed.certChainPem[1] as string) + signed.trustBundlePem.join(''),
      },
    );
    t.ok(verified.ok, verified.output.split('\n')[0] ?? '');
    t.match(verified.output.toLowerCase(), signed.serial.toLowerCase().replace(/^0+/, ''));
    t.match(verified.output, /Superseded/);
  },
);

t.test('metrics expose signings, revocations and expiry times', async (t) => {
  const res = await fetch(`http://${env.ca.metricsAddress}/metrics`);
  const body = await res.text();
  t.match(body, /palisade_ca_signings_total\{result="issued",via="join-token"\} \d+/);
  t.match(body, /palisade_ca_revocations_total\{kind="identity"\} \d+/);
  t.match(body, /palisade_ca_root_expiry_timestamp_seconds \d+/);
  t.equal((await fetch(`http://${env.ca.metricsAddress}/readyz`)).status, 200);
});

const MESH_YAML = `
mode: strict
default: same-namespace
deny:
  - { from: "*", to: "ns/payments/*", except: ["ns/payments/*"] }
  - { from: "ns/shop/sa/quarantined", to: "*" }
maxCertTtl: 24h
`;

/** Resolves with the first message `accept` takes, from callbacks a test wires up. */
function firstOf<T>(): { push(value: T): void; when(accept: (v: T) => boolean): Promise<T> } {
  const seen: T[] = [];
  const waiting: { accept: (v: T) => boolean; resolve: (v: T) => void }[] = [];
  return {
    push(value) {
      seen.push(value);
      for (const w of [...waiting]) {
        if (w.accept(value)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve(value);
        }
      }
    },
    when(accept) {
      const found = seen.find(accept);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve) => waiting.push({ accept, resolve }));
    },
  };
}

t.test('a mesh policy is set, audited, and a bad one changes nothing', async (t) => {
  const before = await admin.getPolicy();
  t.match(before, { version: 0, setBy: '', setUnixMs: 0 }, 'none set yet: version 0');
  t.same(JSON.parse(before.documentJson), {
    mode: 'permissive',
    default: 'mesh',
    deny: [],
    maxCertTtl: null,
  });

  const set = await admin.setPolicy({ document: MESH_YAML, source: 'mesh.yaml' });
  t.match(set, { version: 1, setBy: `spiffe://${TD}/palisade/admin`, source: 'mesh.yaml' });
  t.equal(JSON.parse(set.documentJson).mode, 'strict');
  const same = await admin.setPolicy({ document: MESH_YAML, source: 'again.yaml' });
  t.match(same, { version: 1, source: 'mesh.yaml' }, 'the same document records nothing');

  const trustBefore = env.ca.authority.trust.version;
  const bad = await expectFailure(
    t,
    admin.setPolicy({
      document: 'mode: lax\ndeny:\n  - { from: "ns/a*", to: "*" }\nmaxCertTtl: 10s\ncolour: red\n',
      source: 'bad.yaml',
    }),
    'POLICY_INVALID',
    grpc.status.INVALID_ARGUMENT,
  );
  t.match(bad.message, /\(bad\.yaml\), 4 problem\(s\)/);
  for (const problem of [
    /- colour: unknown key/,
    /- mode: "lax"/,
    /- deny\[0\]\.from: /,
    /- maxCertTtl: 10s is shorter/,
  ]) {
    t.match(bad.message, problem);
  }
  t.equal((await admin.getPolicy()).version, 1, 'the policy in force stays');
  const history = await admin.policyHistory({});
  t.same(
    history.policies.map((p) => [p.version, p.source]),
    [[1, 'mesh.yaml']],
    'history unchanged',
  );
  t.equal(env.ca.authority.trust.version, trustBefore, 'trust version unchanged');
  t.ok(eventsNamed('policy.set').some((l) => l['version'] === 1 && l['source'] === 'mesh.yaml'));
});

t.test('WatchTrust carries the new mesh policy in the update after SetPolicy', async (t) => {
  const updates = firstOf<TrustUpdate>();
  const watcher = env.client();
  const cancel = watcher.watchTrust(0, updates.push, () => {});
  t.teardown(() => {
    cancel();
    watcher.close();
  });
  const first = await updates.when(() => true);
  t.equal(first.meshPolicy?.version, 1, 'the first update carries the policy in force');

  const set = await admin.setPolicy({
    document: '{"mode": "strict", "default": "deny"}',
    source: 'deny.json',
  });
  t.equal(set.version, 2);
  const pushed = await updates.when((u) => u.meshPolicy?.version === 2);
  t.same(pushed.meshPolicy, set, 'the pushed record is the stored one');
  t.ok(pushed.version > first.version, 'a policy change is a new trust version');
  t.same(JSON.parse(pushed.meshPolicy?.documentJson ?? ''), {
    mode: 'strict',
    default: 'deny',
    deny: [],
    maxCertTtl: null,
  });
});

t.test('the mesh policy maxCertTtl clamps Sign and Issue lifetimes', async (t) => {
  await admin.setPolicy({ document: 'maxCertTtl: 10m', source: 'short.yaml' });
  t.teardown(() => admin.setPolicy({ document: '{}', source: 'open.yaml' }));
  const key = generateKeyPairSync('ecdsa-p256');
  const issued = await admin.issue({
    spiffeId: WEB,
    csrPem: createCsr({ key, spiffeId: WEB }),
    ttlSeconds: 3600,
  });
  t.ok(issued.notAfterUnixMs - issued.notBeforeUnixMs <= 600_000 + 60_000, 'Issue: at most 10m');
  const created = await admin.createJoinToken({ spiffeId: ORDERS, ttlSeconds: 600 });
  const client = env.client();
  t.teardown(() => client.close());
  const signed = await client.sign({
    csrPem: createCsr({ key, spiffeId: ORDERS }),
    joinToken: created.token,
    ttlSeconds: 7200,
  });
  const lifetimeMs = signed.notAfterUnixMs - Date.now();
  t.ok(lifetimeMs <= 600_000 && lifetimeMs > 500_000, `Sign: about 10m (${lifetimeMs} ms)`);
});

t.test(
  'ReportEvents takes the reporter from the client certificate, never without one',
  async (t) => {
    const event = {
      kind: 'peer.rejected',
      atUnixMs: Date.now(),
      peerId: ORDERS,
      direction: 'inbound',
      reason: 'not-allowed',
      rule: 'deny[0]',
      detailJson: '{"port":8443}',
    };
    const anonymous = env.client();
    t.teardown(() => anonymous.close());
    await expectFailure(
      t,
      anonymous.reportEvents([event]),
      'REPORTER_NO_CERT',
      grpc.status.UNAUTHENTICATED,
    );

    const key = generateKeyPairSync('ecdsa-p256');
    const signed = await admin.issue({
      spiffeId: WEB,
      csrPem: createCsr({ key, spiffeId: WEB }),
      ttlSeconds: 600,
    });
    const agent = env.client(credentialOf(key, signed));
    t.teardown(() => agent.close());
    t.same(await agent.reportEvents([event]), { accepted: 1 });
    await expectFailure(
      t,
      agent.reportEvents([event, { ...event, direction: 'sideways', detailJson: '[]' }]),
      'EVENTS_INVALID',
      grpc.status.INVALID_ARGUMENT,
    );
    const listed = await admin.listEvents({ identityPattern: 'ns/shop/sa/web' });
    t.equal(listed.events.length, 1, 'the refused batch stored nothing');
    t.match(listed.events[0], {
      reporterId: WEB,
      event: { ...event, detailJson: '{"port":8443}' },
    });

    await admin.revoke({ serial: signed.serial, reason: 'superseded' });
    await expectFailure(
      t,
      agent.reportEvents([event]),
      'CERT_REVOKED',
      grpc.status.PERMISSION_DENIED,
    );
  },
);

t.test('WatchEvents streams the stored matches, then a newly reported event', async (t) => {
  const key = generateKeyPairSync('ecdsa-p256');
  const signed = await admin.issue({
    spiffeId: ORDERS,
    csrPem: createCsr({ key, spiffeId: ORDERS }),
    ttlSeconds: 600,
  });
  const agent = env.client(credentialOf(key, signed));
  const events = firstOf<StoredEventMessage>();
  const cancel = admin.watchEvents({ identityPattern: 'ns/shop/*' }, events.push, () => {});
  t.teardown(() => {
    cancel();
    agent.close();
  });
  const stored = await events.when((e) => e.reporterId === WEB);
  t.equal(stored.event?.reason, 'not-allowed', 'the stored event of the test before');
  const now = Date.now();
  await agent.reportEvents([
    {
      kind: 'http.denied',
      atUnixMs: now,
      peerId: '',
      direction: 'inbound',
      reason: 'jwt-missing',
      rule: '',
      detailJson: '',
    },
  ]);
  const live = await events.when((e) => e.reporterId === ORDERS);
  t.match(live, {
    reporterId: ORDERS,
    event: { kind: 'http.denied', atUnixMs: now, detailJson: '{}' },
  });
  t.ok(live.id > stored.id);
  const anonymous = env.client();
  t.teardown(() => anonymous.close());
  const refused = await new Promise<unknown>((resolve) =>
    anonymous.watchEvents({}, () => {}, resolve),
  );
  t.match(refused, { code: 'ADMIN_NO_CERT', grpcCode: grpc.status.UNAUTHENTICATED });
  const metrics = await (await fetch(`http://${env.ca.metricsAddress}/metrics`)).text();
  t.match(metrics, /palisade_ca_events_stored_total \d+/);
  t.match(metrics, /palisade_ca_events_refused_total\{reason="invalid"\} 2/);
  t.match(metrics, /palisade_ca_mesh_policy_version [1-9]/);
});

t.test('state survives a restart: certificates, revocations and spent tokens', async (t) => {
  const created = await admin.createJoinToken({ spiffeId: ORDERS, ttlSeconds: 600 });
  const client = env.client();
  const key = generateKeyPairSync('ecdsa-p256');
  const csrPem = createCsr({ key, spiffeId: ORDERS });
  const signed = await client.sign({ csrPem, joinToken: created.token });
  client.close();
  await admin.revoke({ spiffeId: `spiffe://${TD}/ns/shop/sa/gone`, reason: 'decommissioned' });
  const before = await admin.list({ includeExpired: true });
  const versionBefore = env.ca.authority.trust.version;
  const policyBefore = await admin.getPolicy();
  const eventsBefore = await admin.listEvents({});
  admin.close();
  await env.ca.stop();

  env = await startTestCa(caDir.dir, caOptions);
  started.push(env);
  admin = env.admin();
  const after = await admin.list({ includeExpired: true });
  const afterSerials = new Set(after.certificates.map((c) => c.serial));
  t.ok(
    before.certificates.every((c) => afterSerials.has(c.serial)),
    'every certificate listed before is listed after (plus the new serving certificate)',
  );
  t.same(
    after.revokedIds.map((r) => r.spiffeId).sort(),
    before.revokedIds.map((r) => r.spiffeId).sort(),
  );
  t.equal(env.ca.authority.trust.version, versionBefore, 'trust version kept');
  t.same(await admin.getPolicy(), policyBefore, 'mesh policy kept');
  t.same(await admin.listEvents({}), eventsBefore, 'event history kept');
  t.ok(after.certificates.some((c) => c.serial === signed.serial));
  const again = env.client();
  t.teardown(() => again.close());
  await expectFailure(
    t,
    again.sign({ csrPem, joinToken: created.token }),
    'TOKEN_USED',
    grpc.status.UNAUTHENTICATED,
  );
});

t.test(
  'rotating the intermediate signs new certificates with it while old ones stay valid',
  async (t) => {
    const key = generateKeyPairSync('ecdsa-p256');
    const csrPem = createCsr({ key, spiffeId: WEB });
    const old = await admin.issue({ spiffeId: WEB, csrPem, ttlSeconds: 600 });
    const rotated = await admin.rotateIntermediate({ ttlSeconds: 30 * 86400 });
    t.not(rotated.newSerial, rotated.oldSerial);
    // A fresh client: the CA's serving certificate now chains to the new intermediate.
    admin.close();
    admin = env.admin();
    const fresh = await admin.issue({ spiffeId: WEB, csrPem, ttlSeconds: 600 });
    const freshInter = new X509Certificate(fresh.certChainPem[1] as string);
    t.equal(freshInter.serialNumber.toLowerCase(), rotated.newSerial.toLowerCase());
    for (const signed of [old, fresh]) {
      const result = openssl(
        [
          'verify',
          '-x509_strict',
          '-CAfile',
          '{root.pem}',
          '-untrusted',
          '{inter.pem}',
          '{leaf.pem}',
        ],
        {
          'root.pem': signed.trustBundlePem.join(''),
          'inter.pem': signed.certChainPem[1] as string,
          'leaf.pem': signed.certChainPem[0] as string,
        },
      );
      t.ok(result.ok, result.output.trim());
    }
    const status = await admin.status();
    t.equal(status.intermediateSerial, rotated.newSerial);
  },
);

t.test('the audit chain verifies after all of the above', async (t) => {
  const store = CaStore.open(join(caDir.dir, 'ca.db'));
  t.teardown(() => store.close());
  const verdict = store.verifyAudit();
  t.ok(verdict.ok);
  t.ok(verdict.count > 10);
});

t.test('every security event of the CA was logged, with no secret in any line', async (t) => {
  for (const name of [
    'cert.issued',
    'cert.revoked',
    'identity.revoked',
    'identity.unrevoked',
    'token.created',
    'trust.updated',
    'intermediate.rotated',
    'csr.rejected',
    'admin.rejected',
    'ca.started',
    'policy.set',
    'events.rejected',
  ]) {
    t.ok(eventsNamed(name).length > 0, `${name} logged`);
  }
  const text = started.flatMap((e) => e.captured.lines.map((l) => JSON.stringify(l))).join('\n');
  t.notMatch(text, /pjt_[A-Za-z0-9_-]{20}/, 'no join token');
  t.notMatch(text, /BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)/, 'no PEM');
});
