// The agent's identity manager against a real CA on loopback. It guarantees
// that the first certificate comes from a join token (once) or a
// service-account token file, that renewal by certificate happens at 40%..60%
// of the lifetime with a fresh key, that an unreachable CA is retried with
// growing delays while the current certificate keeps serving until it
// expires, that trust updates arrive promptly and survive a CA restart, and
// that a revoked certificate or identity is handled and logged. Time is a
// FakeClock; only the network is real.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair as joseKeyPair } from 'jose';
import t, { type Test } from 'tap';
import { readAdminCredential } from '../../certs/ca-dir.js';
import type { CaClient } from '../../certs/client/index.js';
import {
  FakeClock,
  IdentityManager,
  renewAtMs,
  spiffeIdFromServiceAccountToken,
  type IdentityOptions,
  type IdentityState,
  type TrustSnapshot,
  type WorkloadCredential,
} from '../../agent/identity/index.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { makeCaDir, startTestCa, type TestCa } from '../helpers/ca-fixture.js';

const TD = 'test.local';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const SA_ISSUER = 'https://kubernetes.default.svc';

const caDir = makeCaDir(TD);
t.teardown(() => caDir.remove());
const bundlePem = readAdminCredential(caDir.dir).bundlePem;

const saKeys = await joseKeyPair('RS256');
const jwksPath = join(caDir.dir, 'sa-jwks.json');
writeFileSync(
  jwksPath,
  JSON.stringify({ keys: [{ ...(await exportJWK(saKeys.publicKey)), kid: 'k1', alg: 'RS256' }] }),
);

let env: TestCa = await startTestCa(caDir.dir, { saJwks: jwksPath, saIssuer: SA_ISSUER });
let admin: CaClient = env.admin();
t.teardown(async () => {
  admin.close();
  await env.ca.stop();
});

/** Everything every manager logged, to prove no secret ever reached a log line. */
const allLogs: CapturedLog[] = [];
const secrets: string[] = [];

function saToken(opts: { sa?: string; expSeconds?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setSubject(`system:serviceaccount:shop:${opts.sa ?? 'web'}`)
    .setAudience('palisade-ca')
    .setIssuer(SA_ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.expSeconds ?? 600))
    .sign(saKeys.privateKey);
}

async function writeTokenFile(t: Test, token?: string): Promise<string> {
  const path = join(t.testdir(), 'token');
  const value = token ?? (await saToken());
  secrets.push(value);
  writeFileSync(path, value);
  return path;
}

function makeManager(
  t: Test,
  options: Partial<IdentityOptions> & Pick<IdentityOptions, 'proof'>,
): { manager: IdentityManager; clock: FakeClock; log: CapturedLog } {
  const clock = new FakeClock();
  const log = captureLog('identity');
  allLogs.push(log);
  const manager = new IdentityManager({
    caAddr: env.ca.address,
    caBundlePem: bundlePem,
    trustDomain: TD,
    certTtlSeconds: 3600,
    clock,
    random: () => 0.5,
    log: log.log,
    ...options,
  });
  t.teardown(() => manager.stop());
  return { manager, clock, log };
}

function nextCredential(manager: IdentityManager): Promise<WorkloadCredential> {
  return new Promise((resolve) => {
    const off = manager.onCredential((c) => {
      off();
      resolve(c);
    });
  });
}

function nextTrust(
  manager: IdentityManager,
  accept: (s: TrustSnapshot) => boolean = () => true,
): Promise<TrustSnapshot> {
  return new Promise((resolve) => {
    const off = manager.onTrust((s) => {
      if (!accept(s)) return;
      off();
      resolve(s);
    });
  });
}

/** Waits (real time) until `cond` holds; fails the wait after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Advances the fake clock in steps, letting real I/O run between, until `cond` holds. */
async function driveUntil(clock: FakeClock, cond: () => boolean, stepMs = 30_000): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) {
    clock.advance(stepMs);
    await until(() => cond(), 100).catch(() => undefined);
  }
  if (!cond()) throw new Error('condition not met while driving the clock');
}

async function restartCa(): Promise<void> {
  const port = env.ca.port;
  env = await startTestCa(caDir.dir, {
    saJwks: jwksPath,
    saIssuer: SA_ISSUER,
    listen: { host: '127.0.0.1', port },
  });
  admin = env.admin();
}

t.test('reads the identity from a token subject without verifying it', async (t) => {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const token = (payload: unknown) => `${part({ alg: 'RS256' })}.${part(payload)}.c2ln`;
  t.equal(
    spiffeIdFromServiceAccountToken(
      token({ sub: 'system:serviceaccount:shop:web' }),
      'example.org',
    ),
    'spiffe://example.org/ns/shop/sa/web',
  );
  const malformed = [
    'a.b',
    'a.b.c.d',
    `${part({})}.${Buffer.from('[1,2]').toString('base64url')}.c2ln`,
    `${part({})}.not+base64url.c2ln`,
    token({ sub: 'alice' }),
    token({ sub: 42 }),
  ];
  for (const bad of malformed) {
    t.throws(() => spiffeIdFromServiceAccountToken(bad, 'example.org'), {
      code: 'TOKEN_MALFORMED',
    });
  }
  t.throws(
    () =>
      spiffeIdFromServiceAccountToken(
        token({ sub: 'system:serviceaccount:Bad Name:web' }),
        'example.org',
      ),
    { code: 'SPIFFE_ID_INVALID' },
  );
});

t.test('validates options eagerly, naming every problem in one CONFIG_INVALID', async (t) => {
  const log = captureLog('identity').log;
  const base = { caAddr: '127.0.0.1:15112', caBundlePem: bundlePem, trustDomain: TD, log };
  t.throws(() => new IdentityManager({ ...base, proof: { kind: 'join-token', token: 'pjt_x' } }), {
    code: 'CONFIG_INVALID',
  });
  const tokenPath = await writeTokenFile(t, 'not-a-jwt');
  try {
    new IdentityManager({
      ...base,
      caAddr: 'nowhere',
      trustDomain: 'Bad Domain',
      keyType: 'dsa' as never,
      certTtlSeconds: -1,
      proof: { kind: 'token-file', path: tokenPath },
    });
    t.fail('construction should throw');
  } catch (err) {
    const e = err as { code: string; problems: string[] };
    t.equal(e.code, 'CONFIG_INVALID');
    t.ok(e.problems.length >= 4, `${e.problems.length} problems named`);
  }
  t.throws(
    () =>
      new IdentityManager({
        ...base,
        proof: { kind: 'token-file', path: join(t.testdir(), 'missing') },
      }),
    { code: 'CONFIG_INVALID' },
    'a token file that cannot be read when the identity must come from it',
  );
  t.throws(
    () =>
      new IdentityManager({
        ...base,
        spiffeId: 'spiffe://other.domain/ns/a/sa/b',
        proof: { kind: 'join-token', token: 'pjt_x' },
      }),
    { code: 'CONFIG_INVALID' },
    'an identity outside the trust domain',
  );
});

t.test('gets its first certificate with a join token, which then cannot be reused', async (t) => {
  const id = `spiffe://${TD}/ns/shop/sa/joiner`;
  const { token } = await admin.createJoinToken({ spiffeId: id, ttlSeconds: 600 });
  secrets.push(token);
  const { manager, log } = makeManager(t, { spiffeId: id, proof: { kind: 'join-token', token } });
  const states: IdentityState[] = [];
  manager.onState((s) => states.push(s));
  manager.start();
  await manager.ready();
  t.ok(manager.isReady());
  t.equal(manager.credential?.spiffeId, id);
  t.equal(manager.trust?.version, env.ca.authority.trust.version, 'a trust snapshot is held');
  t.same(states, ['starting', 'ready']);
  const rotated = log.events('cert.rotated');
  t.equal(rotated.length, 1);
  t.match(rotated[0], { via: 'join-token', peer_id: id, serial: manager.credential?.serialHex });

  const second = makeManager(t, { spiffeId: id, proof: { kind: 'join-token', token } });
  second.manager.start();
  await until(() => second.log.events('cert.rotation_failed').length > 0);
  t.equal(second.log.events('cert.rotation_failed')[0]?.['err_code'], 'TOKEN_USED');
  t.equal(second.manager.credential, undefined);
  t.notOk(second.manager.isReady());
});

t.test('re-reads the token file at every use and derives the identity from it', async (t) => {
  const expired = await saToken({ expSeconds: -120 });
  const path = await writeTokenFile(t, expired);
  const { manager, clock, log } = makeManager(t, { proof: { kind: 'token-file', path } });
  t.equal(manager.spiffeId, WEB, 'identity from the token subject');
  manager.start();
  await until(() => log.events('cert.rotation_failed').length > 0);
  const failed = log.events('cert.rotation_failed')[0];
  t.equal(failed?.['err_code'], 'TOKEN_EXPIRED');

  const fresh = await saToken();
  secrets.push(fresh);
  writeFileSync(path, fresh);
  const got = nextCredential(manager);
  clock.advance(failed?.['retry_in_ms'] as number);
  const credential = await got;
  t.equal(credential.spiffeId, WEB);
  t.match(log.events('cert.rotated')[0], { via: 'token', peer_id: WEB });
});

t.test('renews by certificate at 60% of the lifetime with a new serial and key', async (t) => {
  const path = await writeTokenFile(t);
  const recorded = { ok: 0, error: 0, expiries: [] as Date[], versions: [] as number[] };
  const { manager, clock, log } = makeManager(t, {
    proof: { kind: 'token-file', path },
    certTtlSeconds: 120,
    random: () => 1,
    metrics: {
      rotations: (result) => void recorded[result]++,
      certExpiry: (notAfter) => void recorded.expiries.push(notAfter),
      trustVersion: (v) => void recorded.versions.push(v),
    },
  });
  manager.start();
  await manager.ready();
  const first = manager.credential as WorkloadCredential;
  // The lifetime counts from arrival (the fake clock has not moved since),
  // not from the CA's back-dated notBefore.
  const arrivedAt = clock.now();
  t.ok(first.notBefore.getTime() < arrivedAt, 'notBefore is back-dated');
  const lifetimeMs = first.notAfter.getTime() - arrivedAt;
  const renewAt = arrivedAt + Math.round(lifetimeMs * 0.6);
  t.equal(
    renewAtMs(arrivedAt, first.notAfter.getTime(), () => 1),
    renewAt,
  );

  clock.advanceTo(renewAt - 1);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(manager.credential, first, 'no renewal before 60% of the lifetime');

  const got = nextCredential(manager);
  clock.advance(1);
  const second = await got;
  t.not(second.serialHex, first.serialHex, 'new serial');
  t.not(second.keyPem, first.keyPem, 'new key pair');
  t.equal(second.spiffeId, WEB);
  t.match(log.events('cert.rotated')[1], { via: 'renewal', serial: second.serialHex });
  t.same(
    { ok: recorded.ok, error: recorded.error, expiries: recorded.expiries },
    { ok: 2, error: 0, expiries: [first.notAfter, second.notAfter] },
    'metric hooks see every rotation and expiry',
  );
  t.same(recorded.versions, [env.ca.authority.trust.version], 'and the trust version');
});

t.test('schedules renewal at 40% of the lifetime when the jitter draws 0', async (t) => {
  const path = await writeTokenFile(t);
  const { manager, clock } = makeManager(t, {
    proof: { kind: 'token-file', path },
    certTtlSeconds: 120,
    random: () => 0,
  });
  manager.start();
  await manager.ready();
  const c = manager.credential as WorkloadCredential;
  const lifetimeMs = c.notAfter.getTime() - clock.now();
  const renewAt = clock.now() + Math.round(lifetimeMs * 0.4);
  t.same(
    clock.pendingDelaysMs(),
    [renewAt - clock.now(), c.notAfter.getTime() - clock.now()],
    'renewal timer at 40%, expiry timer at notAfter',
  );
});

t.test('sees an identity revocation in the trust state promptly', async (t) => {
  const path = await writeTokenFile(t);
  const { manager, log } = makeManager(t, { proof: { kind: 'token-file', path } });
  manager.start();
  await manager.ready();
  const target = `spiffe://${TD}/ns/shop/sa/revoked-peer`;
  const seen = nextTrust(manager, (s) => s.revokedIds.has(target));
  const startMs = performance.now();
  const revoked = await admin.revoke({ spiffeId: target, reason: 'decommissioned' });
  const snapshot = await seen;
  const tookMs = performance.now() - startMs;
  t.ok(tookMs < 500, `arrived in ${tookMs.toFixed(1)} ms`);
  t.equal(snapshot.version, revoked.trustVersion);
  t.match(log.events('trust.updated').at(-1), { version: revoked.trustVersion, revoked_ids: 1 });
  await admin.unrevoke({ spiffeId: target });
});

t.test('reconnects the trust watch after a CA restart and gets the current version', async (t) => {
  const path = await writeTokenFile(t);
  const { manager, clock, log } = makeManager(t, { proof: { kind: 'token-file', path } });
  manager.start();
  await manager.ready();
  const before = manager.trust as TrustSnapshot;

  await env.ca.stop();
  await until(() => log.events('trust.watch_ended').length > 0);
  await restartCa();
  const again = nextTrust(manager);
  await driveUntil(clock, () => log.events('trust.updated').length > 1, 1000);
  const snapshot = await again;
  t.equal(snapshot.version, env.ca.authority.trust.version);
  t.equal(snapshot.trustStore, before.trustStore, 'unchanged bundle reuses the trust store');
  t.ok(manager.isReady());
});

t.test(
  'keeps its certificate while the CA is down, backs off with growing delays, recovers on restart',
  async (t) => {
    const path = await writeTokenFile(t);
    const { manager, clock, log } = makeManager(t, {
      proof: { kind: 'token-file', path },
      random: () => 0.999,
    });
    manager.start();
    await manager.ready();
    const first = manager.credential as WorkloadCredential;
    const arrivedAt = clock.now();

    await env.ca.stop();
    const failures = () => log.events('cert.rotation_failed');
    clock.advanceTo(renewAtMs(arrivedAt, first.notAfter.getTime(), () => 0.999));
    const delays: number[] = [];
    for (let i = 1; i <= 5; i++) {
      await until(() => failures().length >= i);
      delays.push(failures()[i - 1]?.['retry_in_ms'] as number);
      if (i < 5) clock.advance(delays[i - 1] as number);
    }
    t.same(delays, [499, 999, 1998, 3996, 7992], 'delays double from 500 ms (full jitter)');
    t.ok(failures().every((f) => f['err_code'] === 'UNAVAILABLE' && f['via'] === 'renewal'));
    t.equal(manager.credential, first, 'the current credential stays');
    t.ok(manager.isReady(), 'still ready on the current certificate');

    await restartCa();
    const got = nextCredential(manager);
    clock.advance(delays[4] as number);
    const renewed = await got;
    t.not(renewed.serialHex, first.serialHex);
    t.match(log.events('cert.rotated').at(-1), { via: 'renewal', serial: renewed.serialHex });
    t.equal(failures().length, 5, 'the first retry after the restart succeeded');
    t.ok(manager.isReady());
  },
);

t.test(
  'emits expired and drops readiness when the certificate runs out with no replacement',
  async (t) => {
    const path = await writeTokenFile(t);
    const { manager, clock, log } = makeManager(t, {
      proof: { kind: 'token-file', path },
      certTtlSeconds: 60,
    });
    const states: IdentityState[] = [];
    manager.onState((s) => states.push(s));
    manager.start();
    await manager.ready();
    const first = manager.credential as WorkloadCredential;

    await env.ca.stop();
    const failures = () => log.events('cert.rotation_failed');
    await driveUntil(clock, () => clock.now() >= first.notAfter.getTime(), 2_000);
    t.equal(manager.state, 'expired');
    t.notOk(manager.isReady(), 'readiness drops at expiry');
    t.equal(manager.credential, first, 'the last credential is still on hand');
    t.match(log.events('cert.expired'), [{ serial: first.serialHex }]);
    t.ok(failures().length > 3, `${failures().length} retries before expiry`);
    t.ok(
      failures().every((f) => (f['retry_in_ms'] as number) <= 30_000),
      'delays capped at 30 s',
    );
    t.same(states, ['starting', 'ready', 'expired']);

    // Past expiry the token file is the proof. The real CA issues by the real
    // time, which this fake clock has overtaken: the manager refuses a
    // certificate already over by its own clock instead of renewing in a loop.
    // Move the fake clock well past anything the real CA would now issue.
    await driveUntil(clock, () => clock.now() >= first.notAfter.getTime() + 30_000, 10_000);
    const before = failures().length;
    await restartCa();
    await driveUntil(clock, () => failures().length > before + 1, 1000);
    t.match(failures().at(-1), { via: 'token', err_code: 'CERT_EXPIRED' });
    t.equal(log.events('cert.rotated').length, 1, 'no expired certificate was published');
  },
);

t.test('falls back to the token file when its certificate is revoked', async (t) => {
  const path = await writeTokenFile(t);
  const { manager, log } = makeManager(t, { proof: { kind: 'token-file', path } });
  manager.start();
  await manager.ready();
  const first = manager.credential as WorkloadCredential;
  const got = nextCredential(manager);
  await admin.revoke({ serial: first.serialHex, reason: 'key-compromise' });
  const replaced = await got;
  t.not(replaced.serialHex, first.serialHex);
  t.match(log.events('cert.revoked'), [{ serial: first.serialHex }]);
  t.match(log.events('cert.renewal_refused'), [{ err_code: 'CERT_REVOKED' }]);
  t.match(log.events('cert.rotated').at(-1), { via: 'token' });
});

t.test('logs a permanent renewal failure when its own identity is revoked', async (t) => {
  const id = `spiffe://${TD}/ns/shop/sa/doomed`;
  const { token } = await admin.createJoinToken({ spiffeId: id, ttlSeconds: 600 });
  secrets.push(token);
  const { manager, clock, log } = makeManager(t, {
    spiffeId: id,
    proof: { kind: 'join-token', token },
  });
  manager.start();
  await manager.ready();
  const first = manager.credential as WorkloadCredential;
  await admin.revoke({ spiffeId: id, reason: 'decommissioned' });
  await until(() => log.events('cert.rotation_failed').length > 0);
  // Revoking an identity revokes its serials too: either permanent code may come first.
  const permanent = ['CERT_REVOKED', 'IDENTITY_REVOKED'];
  t.match(log.events('cert.revoked'), [{ serial: first.serialHex, peer_id: id }]);
  t.match(log.events('cert.rotation_failed')[0], { via: 'renewal' });
  t.ok(permanent.includes(log.events('cert.rotation_failed')[0]?.['err_code'] as string));
  t.equal(manager.credential, first, 'keeps the current credential');

  clock.advance(log.events('cert.rotation_failed')[0]?.['retry_in_ms'] as number);
  await until(() => log.events('cert.rotation_failed').length > 1);
  t.ok(permanent.includes(log.events('cert.rotation_failed')[1]?.['err_code'] as string));
});

t.test('stop cancels timers and the stream, and ready() rejects when never ready', async (t) => {
  const path = await writeTokenFile(t);
  const { manager, clock } = makeManager(t, { proof: { kind: 'token-file', path } });
  manager.start();
  await manager.ready();
  await manager.stop();
  t.same(clock.pendingDelaysMs(), [], 'no timer left');
  t.equal(manager.state, 'stopped');
  t.throws(() => manager.start(), { code: 'IDENTITY_STOPPED' });

  const { manager: idle } = makeManager(t, { proof: { kind: 'token-file', path } });
  await idle.stop();
  await t.rejects(idle.ready(), { code: 'IDENTITY_STOPPED' });
});

t.test('never logs keys, tokens or PEM', async (t) => {
  const text = JSON.stringify(allLogs.flatMap((l) => l.lines));
  t.notMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE/);
  for (const secret of secrets) t.notOk(text.includes(secret), 'token absent from logs');
});
