import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';
import t from 'tap';

import { compilePattern } from '../../../certs/policy/index.js';
import { MIGRATIONS } from '../../../certs/store/schema.js';
import { CaStore, SCHEMA_VERSION, type SecurityEventInput } from '../../../certs/store/index.js';

const ALICE = 'spiffe://cluster.local/ns/shop/sa/alice';
const BOB = 'spiffe://cluster.local/ns/shop/sa/bob';
const ISSUER = 'aa'.repeat(16);
const T0 = new Date('2030-01-01T00:00:00Z');
const HOUR_MS = 3_600_000;

function at(offsetMs: number): Date {
  return new Date(T0.getTime() + offsetMs);
}

function serialOf(n: number): string {
  return (0x40 + n).toString(16).padEnd(32, '0');
}

/** The parts of a tap test a helper needs to make and clean up a store. */
interface Harness {
  testdir(): string;
  teardown(fn: () => void): void;
}

function openStore(t: Harness): { store: CaStore; file: string } {
  const file = path.join(t.testdir(), 'ca.db');
  const store = CaStore.open(file);
  t.teardown(() => store.close());
  return { store, file };
}

function issue(store: CaStore, n: number, spiffeId = ALICE, lifetimeMs = HOUR_MS): string {
  const serialHex = serialOf(n);
  store.recordIssued({
    serialHex,
    spiffeId,
    notBefore: at(-60_000),
    notAfter: at(lifetimeMs),
    issuedVia: 'sa-token',
    issuerSerialHex: ISSUER,
    now: T0,
  });
  return serialHex;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

t.test('creates the file with mode 0600 and the current schema', (t) => {
  const { store, file } = openStore(t);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  const raw = new Database(file, { readonly: true });
  t.teardown(() => raw.close());
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  const version = raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as {
    value: string;
  };
  t.equal(Number(version.value), SCHEMA_VERSION);
  t.equal(store.trustVersion(), 0);
  t.end();
});

t.test('records, lists and counts issued certificates', (t) => {
  const { store } = openStore(t);
  const a = issue(store, 1);
  const b = issue(store, 2, BOB);
  issue(store, 3, ALICE, 1000);

  const cert = store.getCert(a.toUpperCase());
  t.match(cert, { serialHex: a, spiffeId: ALICE, issuedVia: 'sa-token', revoked: false });
  t.equal(cert?.notAfter.getTime(), at(HOUR_MS).getTime());
  t.equal(store.getCert('ff'), undefined);

  const later = at(2000);
  t.same(
    store
      .listCerts({ now: later })
      .map((c) => c.serialHex)
      .sort(),
    [a, b].sort(),
  );
  t.same(
    store.listCerts({ spiffeId: BOB, now: later }).map((c) => c.serialHex),
    [b],
  );
  t.equal(store.listCerts({ includeExpired: true, now: later }).length, 3);
  t.equal(store.listCerts({ includeExpired: true, limit: 2 }).length, 2);
  t.same(store.countCerts(later), { total: 3, active: 2, revoked: 0 });
  t.equal(store.auditRecords().filter((r) => r.event === 'cert.issued').length, 3);
  t.end();
});

t.test('refuses a serial that is already recorded', (t) => {
  const { store } = openStore(t);
  issue(store, 1);
  t.equal(
    codeOf(() => issue(store, 1)),
    'DUPLICATE_SERIAL',
  );
  t.equal(store.countCerts(T0).total, 1);
  t.end();
});

t.test('revoking an unknown serial throws UNKNOWN_SERIAL and changes nothing', (t) => {
  const { store } = openStore(t);
  issue(store, 1);
  const auditBefore = store.auditRecords().length;
  t.equal(
    codeOf(() => store.revokeSerial(serialOf(9), 'key compromise', T0)),
    'UNKNOWN_SERIAL',
  );
  t.equal(store.auditRecords().length, auditBefore);
  t.equal(store.trustVersion(), 0);
  t.same(store.revocationSet(T0).serials, []);
  t.end();
});

t.test('revokes a serial once and repeats idempotently', (t) => {
  const { store } = openStore(t);
  const serial = issue(store, 1);

  const first = store.revokeSerial(serial, 'key compromise', at(1000));
  t.equal(first.alreadyRevoked, false);
  t.match(first.revocation, { serialHex: serial, spiffeId: ALICE, reason: 'key compromise' });
  t.ok(store.isSerialRevoked(serial));
  t.equal(store.getCert(serial)?.revoked, true);
  t.equal(store.trustVersion(), 1);
  const auditCount = store.auditRecords().length;
  t.match(store.auditRecords().at(-1), {
    event: 'cert.revoked',
    data: { serial, spiffe_id: ALICE, reason: 'key compromise' },
  });

  const again = store.revokeSerial(serial, 'other reason', at(5000));
  t.equal(again.alreadyRevoked, true);
  t.equal(again.revocation.reason, 'key compromise');
  t.equal(again.revocation.revokedAt.getTime(), at(1000).getTime());
  t.equal(store.auditRecords().length, auditCount);
  t.equal(store.trustVersion(), 1);
  t.end();
});

t.test('revoking an identity revokes its unexpired certificates and blocks issuance', (t) => {
  const { store } = openStore(t);
  const live1 = issue(store, 1);
  const live2 = issue(store, 2);
  const expired = issue(store, 3, ALICE, 1000);
  const other = issue(store, 4, BOB);

  const { revocation, serials } = store.revokeIdentity(ALICE, 'node lost', at(2000));
  t.equal(revocation.spiffeId, ALICE);
  t.same(serials.sort(), [live1, live2].sort());
  t.ok(store.isIdentityRevoked(ALICE));
  t.notOk(store.isIdentityRevoked(BOB));
  t.ok(store.isSerialRevoked(live1));
  t.notOk(store.isSerialRevoked(expired));
  t.notOk(store.isSerialRevoked(other));
  t.match(store.auditRecords().at(-1), {
    event: 'identity.revoked',
    data: { spiffe_id: ALICE, reason: 'node lost' },
  });

  t.equal(
    codeOf(() => issue(store, 5)),
    'IDENTITY_REVOKED',
  );
  t.equal(store.getCert(serialOf(5)), undefined);

  const repeat = store.revokeIdentity(ALICE, 'again', at(3000));
  t.same(repeat.serials, []);
  t.equal(repeat.revocation.reason, 'node lost');
  t.end();
});

t.test('unrevoking an identity lifts the block but keeps its certificates revoked', (t) => {
  const { store } = openStore(t);
  const old = issue(store, 1);
  store.revokeIdentity(ALICE, 'node lost', T0);

  t.equal(store.unrevokeIdentity(ALICE, at(1000)), true);
  t.notOk(store.isIdentityRevoked(ALICE));
  t.ok(store.isSerialRevoked(old));
  t.equal(store.auditRecords().at(-1)?.event, 'identity.unrevoked');
  issue(store, 2);
  t.equal(store.getCert(serialOf(2))?.revoked, false);

  t.equal(store.unrevokeIdentity(ALICE, at(2000)), false);
  t.equal(store.unrevokeIdentity(BOB, at(2000)), false);
  t.end();
});

t.test('the revocation set drops expired serials and carries each version bump', (t) => {
  const { store } = openStore(t);
  const short = issue(store, 1, ALICE, 10_000);
  const long = issue(store, 2, ALICE, HOUR_MS);
  t.same(store.revocationSet(T0), { version: 0, serials: [], identities: [] });

  store.revokeSerial(short, 'test', T0);
  t.same(store.revocationSet(T0), { version: 1, serials: [short], identities: [] });

  store.revokeIdentity(BOB, 'test', T0);
  t.same(store.revocationSet(T0), { version: 2, serials: [short], identities: [BOB] });

  store.revokeSerial(long, 'test', T0);
  t.same(store.revocationSet(at(20_000)), { version: 3, serials: [long], identities: [BOB] });
  t.same(
    store.listRevocations(at(20_000)).serials.map((r) => r.serialHex),
    [long],
  );

  t.equal(store.bumpTrustVersion('bundle rotated'), 4);
  t.match(store.auditRecords().at(-1), {
    event: 'trust.updated',
    data: { reason: 'bundle rotated' },
  });
  t.equal(store.revocationSet(T0).version, 4);
  t.end();
});

t.test('a join token works exactly once', (t) => {
  const { store } = openStore(t);
  const { token, record } = store.createJoinToken(ALICE, 600, T0);
  t.match(token, /^pjt_[A-Za-z0-9_-]{43}$/);
  t.equal(record.idHint.length, 8);
  t.equal(record.expiresAt.getTime(), at(600_000).getTime());

  t.equal(store.consumeJoinToken(token, at(1000)), ALICE);
  t.equal(
    codeOf(() => store.consumeJoinToken(token, at(2000))),
    'TOKEN_USED',
  );
  t.match(store.auditRecords().at(-1), {
    event: 'token.used',
    data: { spiffe_id: ALICE, id_hint: record.idHint },
  });
  t.end();
});

t.test('an expired join token is refused with TOKEN_EXPIRED', (t) => {
  const { store } = openStore(t);
  const { token } = store.createJoinToken(ALICE, 60, T0);
  t.equal(
    codeOf(() => store.consumeJoinToken(token, at(60_000))),
    'TOKEN_EXPIRED',
  );
  t.end();
});

t.test('an unknown or malformed join token is refused with TOKEN_UNKNOWN', (t) => {
  const { store } = openStore(t);
  store.createJoinToken(ALICE, 60, T0);
  t.equal(
    codeOf(() => store.consumeJoinToken(`pjt_${'A'.repeat(43)}`, T0)),
    'TOKEN_UNKNOWN',
  );
  t.equal(
    codeOf(() => store.consumeJoinToken('not a token', T0)),
    'TOKEN_UNKNOWN',
  );
  t.end();
});

t.test('a join token is spent once across two connections to the same file', (t) => {
  const { store, file } = openStore(t);
  const second = CaStore.open(file);
  t.teardown(() => second.close());
  const { token } = store.createJoinToken(ALICE, 600, T0);

  const outcomes = [store, second, store, second].map((s) =>
    codeOf(() => s.consumeJoinToken(token, T0)),
  );
  t.same(outcomes, [undefined, 'TOKEN_USED', 'TOKEN_USED', 'TOKEN_USED']);
  t.end();
});

t.test('the plaintext join token appears nowhere in the database files', (t) => {
  const { store, file } = openStore(t);
  const { token } = store.createJoinToken(ALICE, 600, T0);
  const unused = store.createJoinToken(BOB, 600, T0).token;
  store.consumeJoinToken(token, T0);

  const body = token.slice('pjt_'.length);
  for (const candidate of [file, `${file}-wal`, `${file}-shm`]) {
    if (!fs.existsSync(candidate)) continue;
    const bytes = fs.readFileSync(candidate);
    t.equal(bytes.indexOf(body), -1, `${path.basename(candidate)} lacks the used token`);
    t.equal(bytes.indexOf(unused.slice(4)), -1, `${path.basename(candidate)} lacks the unused one`);
    t.equal(bytes.indexOf(Buffer.from(body, 'base64url')), -1, 'nor its raw bytes');
  }
  t.end();
});

t.test('meta values round-trip, are audited by hash, and store keys are reserved', (t) => {
  const { store } = openStore(t);
  t.equal(store.getMeta('bundle'), undefined);
  store.setMeta('bundle', '-----BEGIN CERTIFICATE-----\nAAAA\n', 'bundle.updated');
  t.equal(store.getMeta('bundle'), '-----BEGIN CERTIFICATE-----\nAAAA\n');
  const record = store.auditRecords().at(-1);
  t.equal(record?.event, 'bundle.updated');
  t.notOk(JSON.stringify(record?.data).includes('BEGIN'));
  t.equal(
    codeOf(() => store.setMeta('trust_version', '99')),
    'STORE_INVALID',
  );
  t.end();
});

t.test('audit refuses data shaped like a secret', (t) => {
  const { store } = openStore(t);
  const { token } = store.createJoinToken(ALICE, 60, T0);
  const before = store.auditRecords().length;
  t.equal(
    codeOf(() => store.appendAudit('token.leaked', { token })),
    'STORE_INVALID',
  );
  t.equal(
    codeOf(() => store.appendAudit('Bad Name', {})),
    'STORE_INVALID',
  );
  t.equal(store.auditRecords().length, before);
  t.end();
});

t.test('everything survives close and reopen', (t) => {
  const file = path.join(t.testdir(), 'ca.db');
  const first = CaStore.open(file);
  const kept = issue(first, 1);
  const revoked = issue(first, 2);
  first.revokeSerial(revoked, 'test', T0);
  first.revokeIdentity(BOB, 'test', T0);
  const { token } = first.createJoinToken(ALICE, 600, T0);
  first.setMeta('ca.name', 'palisade');
  const head = first.verifyAudit();
  first.close();

  const second = CaStore.open(file);
  t.teardown(() => second.close());
  t.equal(second.getCert(kept)?.spiffeId, ALICE);
  t.ok(second.isSerialRevoked(revoked));
  t.ok(second.isIdentityRevoked(BOB));
  t.same(second.revocationSet(T0), { version: 2, serials: [revoked], identities: [BOB] });
  t.equal(second.getMeta('ca.name'), 'palisade');
  t.equal(second.consumeJoinToken(token, T0), ALICE);
  const verdict = second.verifyAudit();
  t.ok(verdict.ok);
  t.equal(verdict.count, (head.ok ? head.count : 0) + 1);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.end();
});

t.test('the audit chain verifies and names the first tampered record', (t) => {
  const { store, file } = openStore(t);
  issue(store, 1);
  issue(store, 2);
  store.revokeSerial(serialOf(1), 'test', T0);
  const records = store.auditRecords();
  t.equal(records[0]?.prevHash, '0'.repeat(64));
  t.equal(records[1]?.prevHash, records[0]?.hash);
  const verdict = store.verifyAudit();
  t.same(verdict, { ok: true, count: 3, headHash: records[2]?.hash });

  // The store's triggers refuse edits; an attacker with the file drops them.
  const raw = new Database(file);
  t.teardown(() => raw.close());
  t.throws(() => raw.prepare("UPDATE audit SET event = 'x' WHERE seq = 2").run());
  raw.exec('DROP TRIGGER audit_no_update');
  const forged = JSON.stringify({ ...records[1]?.data, spiffe_id: BOB });
  raw.prepare('UPDATE audit SET data = ? WHERE seq = 2').run(forged);

  t.match(store.verifyAudit(), { ok: false, brokenSeq: 2, count: 1 });
  t.end();
});

t.test('opening a file that is not a database throws STORE_CORRUPT', (t) => {
  const file = path.join(t.testdir(), 'ca.db');
  fs.writeFileSync(
    file,
    'this is not sqlite, just some text long enough to fill a header'.repeat(20),
  );
  t.equal(
    codeOf(() => CaStore.open(file)),
    'STORE_CORRUPT',
  );
  t.end();
});

t.test('opening a store in a missing directory throws STORE_IO', (t) => {
  const file = path.join(t.testdir(), 'missing', 'ca.db');
  t.equal(
    codeOf(() => CaStore.open(file)),
    'STORE_IO',
  );
  t.end();
});

const OPEN_DOC = '{"mode":"permissive","default":"mesh","deny":[],"maxCertTtl":null}';
const STRICT_DOC = '{"mode":"strict","default":"same-namespace","deny":[],"maxCertTtl":"1d"}';
const ADMIN = 'spiffe://cluster.local/palisade/admin';

t.test('mesh policy versions count up, each in one audited trust bump', (t) => {
  const { store } = openStore(t);
  t.equal(store.policies.current(), undefined, 'none before the first set');

  const first = store.policies.set({
    documentJson: STRICT_DOC,
    source: 'a.yaml',
    setBy: ADMIN,
    now: T0,
  });
  t.match(first, { changed: true, trustVersion: 1, policy: { version: 1, source: 'a.yaml' } });
  t.equal(store.trustVersion(), 1);
  const second = store.policies.set({
    documentJson: OPEN_DOC,
    source: 'b.yaml',
    setBy: ADMIN,
    now: at(1000),
  });
  t.match(second, { changed: true, trustVersion: 2, policy: { version: 2, setBy: ADMIN } });
  t.equal(second.policy.setAt.getTime(), T0.getTime() + 1000);

  const audit = store.auditRecords().filter((r) => r.event === 'policy.set');
  t.equal(audit.length, 2);
  t.same(audit[0]?.data, {
    version: 1,
    document_sha256: first.policy.documentSha256,
    set_by: ADMIN,
    source: 'a.yaml',
    trust_version: 1,
  });
  t.match(first.policy.documentSha256, /^[0-9a-f]{64}$/);
  t.same(
    store.policies.history().map((p) => p.version),
    [2, 1],
    'history is newest first',
  );
  t.same(
    store.policies.history(1).map((p) => p.documentJson),
    [OPEN_DOC],
  );
  t.ok(store.verifyAudit().ok, 'the audit chain verifies');
  t.end();
});

t.test('setting the document already in force records nothing', (t) => {
  const { store } = openStore(t);
  store.policies.set({ documentJson: STRICT_DOC, source: 'a.yaml', setBy: ADMIN, now: T0 });
  const auditBefore = store.auditRecords().length;
  const again = store.policies.set({
    documentJson: STRICT_DOC,
    source: 'other.yaml',
    setBy: ADMIN,
  });
  t.match(again, { changed: false, trustVersion: 1, policy: { version: 1, source: 'a.yaml' } });
  t.equal(store.auditRecords().length, auditBefore, 'no audit record');
  t.equal(store.trustVersion(), 1, 'no trust bump');
  t.equal(store.policies.history().length, 1);
  t.equal(
    codeOf(() => store.policies.set({ documentJson: '{nope', source: '', setBy: ADMIN })),
    'STORE_INVALID',
  );
  t.equal(
    codeOf(() => store.policies.set({ documentJson: OPEN_DOC, source: '', setBy: '' })),
    'STORE_INVALID',
  );
  t.end();
});

t.test('a version 1 store gains the policy and event tables and keeps its data', (t) => {
  const file = path.join(t.testdir(), 'old.db');
  const raw = new Database(file);
  raw.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT');
  raw.exec(MIGRATIONS[0] as string);
  raw
    .prepare("INSERT INTO meta (key, value) VALUES ('schema_version', '1'), ('trust_version', '7')")
    .run();
  raw.close();

  const store = CaStore.open(file);
  t.teardown(() => store.close());
  t.equal(store.getMeta('schema_version'), '2');
  t.equal(SCHEMA_VERSION, 2);
  t.equal(store.trustVersion(), 7);
  t.equal(store.policies.set({ documentJson: OPEN_DOC, source: '', setBy: ADMIN }).trustVersion, 8);
  t.equal(store.events.count(), 0);
  t.end();
});

function event(n: number, fields: Partial<SecurityEventInput> = {}): SecurityEventInput {
  return {
    kind: 'peer.rejected',
    atMs: T0.getTime() + n * 1000,
    peerId: BOB,
    direction: 'inbound',
    reason: `reason-${n}`,
    rule: '',
    detailJson: `{"n":${n}}`,
    ...fields,
  };
}

t.test('events are stored with ids and listed newest-N, oldest first', (t) => {
  const { store } = openStore(t);
  const { stored } = store.events.append(ALICE, [event(1), event(2), event(3)], at(5000));
  t.same(
    stored.map((e) => e.id),
    [1, 2, 3],
  );
  t.equal(stored[0]?.reporterId, ALICE);
  t.equal(stored[0]?.receivedAt.getTime(), T0.getTime() + 5000);
  store.events.append(BOB, [event(4, { peerId: '' })], at(6000));

  t.same(
    store.events.list({ limit: 2 }).map((e) => e.reason),
    ['reason-3', 'reason-4'],
  );
  t.same(
    store.events.list({ limit: 100, afterId: 2 }).map((e) => e.id),
    [3, 4],
  );
  t.same(
    store.events.list({ limit: 100, sinceMs: T0.getTime() + 2000 }).map((e) => e.id),
    [2, 3, 4],
  );
  const listed = store.events.list({ limit: 1, afterId: 0 })[0];
  t.same(listed, { ...event(4, { peerId: '' }), id: 4, reporterId: BOB, receivedAt: at(6000) });
  t.equal(
    codeOf(() => store.events.append('not-an-id', [event(5)], T0)),
    'STORE_INVALID',
  );
  t.equal(store.events.count(), 4, 'a refused batch stores nothing');
  t.end();
});

t.test('an identity pattern matches the reporter or the peer, inner wildcards too', (t) => {
  const { store } = openStore(t);
  const CAROL = 'spiffe://cluster.local/ns/pay/sa/carol';
  store.events.append(ALICE, [event(1, { peerId: CAROL })], T0);
  store.events.append(CAROL, [event(2, { peerId: '' })], T0);
  store.events.append(BOB, [event(3, { peerId: ALICE })], T0);
  store.events.append(BOB, [event(4, { peerId: '' })], T0);
  const ids = (pattern: string) =>
    store.events
      .list({ limit: 100, identity: compilePattern(pattern, 'cluster.local') })
      .map((e) => e.id);
  t.same(ids('ns/pay/*'), [1, 2], 'peer or reporter in ns/pay');
  t.same(ids('ns/shop/sa/alice'), [1, 3], 'exact identity');
  t.same(ids('ns/*/sa/carol'), [1, 2], 'inner wildcard');
  t.same(ids('ns/shop/*'), [1, 3, 4], 'reporters and peers in ns/shop');
  t.same(ids('spiffe://other.test/*'), []);
  t.end();
});

t.test('the event history stays within its bound, pruning the oldest', (t) => {
  const file = path.join(t.testdir(), 'ca.db');
  const store = CaStore.open(file, { maxEvents: 50 });
  t.teardown(() => store.close());
  let next = 1;
  for (let batch = 0; batch < 20; batch++) {
    const events = Array.from({ length: 7 }, () => event(next++));
    store.events.append(ALICE, events, T0);
    t.ok(store.events.count() <= 50, `at most 50 rows after batch ${batch}`);
  }
  const kept = store.events.list({ limit: 1000 });
  t.equal(kept.at(-1)?.id, 140, 'ids keep growing');
  t.equal(kept.length, store.events.count());
  t.ok(kept.length >= 49, 'prunes in batches, not down to nothing');
  t.equal(kept[0]?.id, 140 - kept.length + 1, 'the newest are the ones kept');
  t.end();
});
