// The `palisade ca` CLI against a real CA: every command of the contract runs
// in-process through the same commander program the binary uses, and the
// binary itself serves and stops on SIGTERM. It guarantees that the documented
// commands work, print stable JSON, and fail with one clear line and a
// non-zero status.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import t from 'tap';
import { runCli } from '../../agent/cli/program.js';
import { readAdminCredential } from '../../certs/ca-dir.js';
import { CaClient } from '../../certs/client/index.js';
import { TEST_PASSPHRASE, startTestCa } from '../helpers/ca-fixture.js';
import { openssl } from '../helpers/openssl.js';

const TD = 'cli.test';
const work = mkdtempSync(join(tmpdir(), 'palisade-cli-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const dir = join(work, 'ca');
const baseEnv = { PALISADE_CA_PASSPHRASE: TEST_PASSPHRASE };

async function cli(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const status = await runCli(args, {
    env: { ...baseEnv, ...env },
    io: { out: (s) => void (out += s), err: (s) => void (err += s) },
    version: 'test',
    untilStopped: () => Promise.resolve(),
  });
  return { status, out, err };
}

t.test('ca init writes a CA and refuses to overwrite it without --force', async (t) => {
  const first = await cli(['ca', 'init', '--trust-domain', TD, '--dir', dir]);
  t.equal(first.status, 0, first.err);
  t.match(first.out, /admin identity\s+spiffe:\/\/cli\.test\/palisade\/admin/);
  t.equal(statSync(join(dir, 'intermediate.key.pem')).mode & 0o777, 0o600);
  t.match(readFileSync(join(dir, 'intermediate.key.pem'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
  const again = await cli(['ca', 'init', '--trust-domain', TD, '--dir', dir]);
  t.equal(again.status, 1);
  t.match(again.err, /^palisade: CA_EXISTS: /);
  const bad = await cli(['ca', 'init', '--trust-domain', 'Not_Valid!', '--dir', join(work, 'bad')]);
  t.not(bad.status, 0);
  t.match(bad.err, /SPIFFE_ID_INVALID/);
});

t.test('commands against a running CA', async (t) => {
  const env = await startTestCa(dir);
  t.teardown(() => env.ca.stop());
  const remote = (args: string[]) => cli([...args, '--dir', dir, '--ca-addr', env.ca.address]);

  await t.test(
    'ca issue writes a key (0600), a chain and a bundle that OpenSSL verifies',
    async (t) => {
      const out = join(work, 'web');
      const issued = await remote([
        'ca',
        'issue',
        '--id',
        `spiffe://${TD}/ns/shop/sa/web`,
        '--ttl',
        '30m',
        '--out',
        out,
        '--json',
      ]);
      t.equal(issued.status, 0, issued.err);
      const summary = JSON.parse(issued.out) as { serial: string; spiffeId: string };
      t.equal(summary.spiffeId, `spiffe://${TD}/ns/shop/sa/web`);
      t.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);
      const chain = readFileSync(join(out, 'cert.pem'), 'utf8');
      const verified = openssl(
        [
          'verify',
          '-x509_strict',
          '-purpose',
          'sslclient',
          '-CAfile',
          '{b.pem}',
          '-untrusted',
          '{c.pem}',
          '{c.pem}',
        ],
        {
          'b.pem': readFileSync(join(out, 'bundle.pem'), 'utf8'),
          'c.pem': chain,
        },
      );
      t.ok(verified.ok, verified.output.trim());

      const listed = await remote(['ca', 'list', '--json']);
      t.equal(listed.status, 0, listed.err);
      const certs = (JSON.parse(listed.out) as { certificates: { serial: string }[] }).certificates;
      t.ok(
        certs.some((c) => c.serial === summary.serial),
        'list shows the new certificate',
      );

      const revoked = await remote([
        'ca',
        'revoke',
        '--serial',
        summary.serial,
        '--reason',
        'key-compromise',
        '--json',
      ]);
      t.equal(revoked.status, 0, revoked.err);
      t.same((JSON.parse(revoked.out) as { serials: string[] }).serials, [summary.serial]);
      const revokedList = await remote(['ca', 'list', '--revoked']);
      t.match(revokedList.out, summary.serial);
    },
  );

  await t.test(
    'ca revoke --id, unrevoke, token create, crl, status and rotate-intermediate',
    async (t) => {
      const id = `spiffe://${TD}/ns/shop/sa/batch`;
      t.equal((await remote(['ca', 'revoke', '--id', id, '--reason', 'decommissioned'])).status, 0);
      t.match((await remote(['ca', 'unrevoke', '--id', id])).out, /lifted/);
      const token = await remote(['ca', 'token', 'create', '--id', id, '--ttl', '5m']);
      t.match(token.out, /^pjt_[A-Za-z0-9_-]+\n$/);
      const crlPath = join(work, 'crl.pem');
      t.equal((await remote(['ca', 'crl', '--out', crlPath])).status, 0);
      t.match(readFileSync(crlPath, 'utf8'), /BEGIN X509 CRL/);
      const status = await remote(['ca', 'status', '--json']);
      const parsed = JSON.parse(status.out) as { trustDomain: string; certificatesTotal: number };
      t.equal(parsed.trustDomain, TD);
      t.ok(parsed.certificatesTotal >= 2);
      const rotated = await remote(['ca', 'rotate-intermediate', '--ttl', '30d']);
      t.match(rotated.out, /^rotated intermediate [0-9a-f]+ -> [0-9a-f]+/);
    },
  );

  await t.test('ca policy set, get and history, and a bad document changes nothing', async (t) => {
    const file = join(work, 'mesh.yaml');
    writeFileSync(
      file,
      'mode: strict\ndefault: same-namespace\n' +
        'deny:\n  - { from: "*", to: "ns/payments/*", except: ["ns/payments/*"] }\n' +
        'maxCertTtl: 12h\n',
    );
    const set = await remote(['ca', 'policy', 'set', '--file', file]);
    t.equal(set.status, 0, set.err);
    t.equal(set.out, `mesh policy version 1 set by spiffe://${TD}/palisade/admin from ${file}\n`);
    t.match((await remote(['ca', 'policy', 'set', '--file', file])).out, /^unchanged: /);

    const get = await remote(['ca', 'policy', 'get']);
    t.equal(get.status, 0, get.err);
    t.match(get.out, /^version: 1\nset by: spiffe:\/\/cli\.test\/palisade\/admin\nset at: 20\d\d-/);
    t.match(get.out, /\ndocument:\n {2}mode: strict\n {2}default: same-namespace\n {2}deny:\n/);
    t.match(get.out, /\n {2}maxCertTtl: 12h\n$/);
    const json = JSON.parse((await remote(['ca', 'policy', 'get', '--json'])).out) as {
      version: number;
      document: { deny: { except: string[] }[] };
    };
    t.equal(json.version, 1);
    t.same(json.document.deny[0]?.except, ['ns/payments/*']);

    const bad = join(work, 'bad.yaml');
    writeFileSync(bad, 'mode: lax\nmaxCertTtl: 5s\ndeny: [{ from: "ns/x*", to: "*" }]\n');
    const refused = await remote(['ca', 'policy', 'set', '--file', bad]);
    t.equal(refused.status, 2);
    t.match(
      refused.err,
      /^palisade: POLICY_INVALID: mesh policy refused \(.*bad\.yaml\), 3 problem/,
    );
    t.match(
      refused.err,
      /\n {2}- mode: "lax".*\n {2}- deny\[0\]\.from: .*\n {2}- maxCertTtl: 5s is shorter/s,
    );
    const missing = await remote(['ca', 'policy', 'set', '--file', join(work, 'nope.yaml')]);
    t.equal(missing.status, 1);
    t.match(missing.err, /^palisade: POLICY_UNREADABLE: cannot read /);

    const history = await remote(['ca', 'policy', 'history']);
    t.equal(history.status, 0, history.err);
    t.match(history.out, /^version\s+set at\s+set by\s+source\s+policy\n1 /);
    t.match(
      history.out,
      /mode strict, default same-namespace, 1 deny rule\(s\), maxCertTtl 12h\n$/,
    );
    t.equal(history.out.split('\n').length, 3, 'one version: the refused one left no trace');
    const historyJson = JSON.parse((await remote(['ca', 'policy', 'history', '--json'])).out);
    t.match(historyJson, [{ version: 1, source: file, document: { mode: 'strict' } }]);
    const badLimit = await remote(['ca', 'policy', 'history', '--limit', '0']);
    t.equal(badLimit.status, 2);
    t.match(badLimit.err, /USAGE: --limit must be a whole number from 1 to 1000/);
  });

  await t.test('ca events prints reported events and --follow shows new ones', async (t) => {
    const out = join(work, 'reporter');
    const id = `spiffe://${TD}/ns/shop/sa/reporter`;
    t.equal((await remote(['ca', 'issue', '--id', id, '--out', out])).status, 0);
    const agent = new CaClient({
      address: env.ca.address,
      trustBundlePem: readAdminCredential(dir).bundlePem,
      trustDomain: TD,
      credential: {
        keyPem: readFileSync(join(out, 'key.pem'), 'utf8'),
        certChainPem: readFileSync(join(out, 'cert.pem'), 'utf8'),
      },
    });
    t.teardown(() => agent.close());
    const denial = (reason: string) => ({
      kind: 'peer.rejected',
      atUnixMs: Date.now(),
      peerId: `spiffe://${TD}/ns/payments/sa/api`,
      direction: 'inbound',
      reason,
      rule: 'deny[0] {from: "*"}',
      detailJson: '{"port":9000}',
    });
    await agent.reportEvents([denial('first')]);

    const json = await remote(['ca', 'events', '--json', '--since', '1h']);
    t.equal(json.status, 0, json.err);
    const lines = json.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    t.match(lines, [
      {
        kind: 'peer.rejected',
        reporterId: id,
        peerId: `spiffe://${TD}/ns/payments/sa/api`,
        reason: 'first',
        detail: { port: 9000 },
      },
    ]);
    const text = await remote(['ca', 'events', '--identity', 'ns/payments/*']);
    const [time, ...fields] = text.out.split(' ');
    t.match(time, /^20\d\d-\d\d-\d\dT[\d:.]+Z$/);
    t.equal(
      fields.join(' '),
      `${id} peer.rejected inbound spiffe://${TD}/ns/payments/sa/api first ` +
        `${JSON.stringify('deny[0] {from: "*"}')}\n`,
      'time, reporter, kind, direction, peer, reason, rule (quoted: it holds spaces)',
    );
    t.equal((await remote(['ca', 'events', '--identity', 'ns/other/*'])).out, '');
    const badPattern = await remote(['ca', 'events', '--identity', 'ns/x*']);
    t.equal(badPattern.status, 2);
    t.match(badPattern.err, /POLICY_INVALID/);

    let followed = '';
    let stop = () => {};
    const printed: { test: RegExp; resolve: () => void }[] = [];
    const seen = (test: RegExp) =>
      new Promise<void>((resolve) => {
        if (test.test(followed)) resolve();
        else printed.push({ test, resolve });
      });
    const following = runCli(
      ['ca', 'events', '--follow', '--json', '--dir', dir, '--ca-addr', env.ca.address],
      {
        env: baseEnv,
        io: {
          out: (s) => {
            followed += s;
            for (const p of printed) if (p.test.test(followed)) p.resolve();
          },
          err: (s) => void (followed += s),
        },
        version: 'test',
        untilStopped: () => new Promise<void>((resolve) => (stop = resolve)),
      },
    );
    await seen(/"reason":"first"/);
    await agent.reportEvents([denial('second')]);
    await seen(/"reason":"second"/);
    stop();
    t.equal(await following, 0, 'exits 0 once stopped');
    t.same(
      followed
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { reason: string }).reason),
      ['first', 'second'],
    );
  });

  await t.test('errors are one line on stderr with a non-zero status', async (t) => {
    const neither = await remote(['ca', 'revoke']);
    t.equal(neither.status, 2);
    t.match(neither.err, /^palisade: USAGE: give exactly one of --serial or --id\n$/);
    const unknown = await remote(['ca', 'revoke', '--serial', 'abcdef']);
    t.equal(unknown.status, 1);
    t.match(unknown.err, /^palisade: UNKNOWN_SERIAL: /);
    const down = await cli(['ca', 'status', '--dir', dir, '--ca-addr', '127.0.0.1:1']);
    t.equal(down.status, 1);
    t.match(down.err, /^palisade: UNAVAILABLE: /);
    const badAddr = await cli(['ca', 'status', '--dir', dir, '--ca-addr', 'nonsense']);
    t.equal(badAddr.status, 2);
    t.match(badAddr.err, /CONFIG_INVALID.*--ca-addr/);
    const badTtl = await remote([
      'ca',
      'token',
      'create',
      '--id',
      `spiffe://${TD}/x`,
      '--ttl',
      'soon',
    ]);
    t.equal(badTtl.status, 2);
    t.match(badTtl.err, /DURATION_INVALID/);
  });
});

t.test('ca audit verify reports an intact chain, then the first tampered record', async (t) => {
  const ok = await cli(['ca', 'audit', 'verify', '--dir', dir]);
  t.equal(ok.status, 0, ok.err);
  t.match(ok.out, /^audit chain intact: \d+ records/);
  const db = new Database(join(dir, 'ca.db'));
  // Someone with the file can drop the append-only trigger; the hash chain still tells.
  db.exec('DROP TRIGGER audit_no_update');
  db.prepare(`UPDATE audit SET data = '{"tampered":true}' WHERE seq = 3`).run();
  db.close();
  const broken = await cli(['ca', 'audit', 'verify', '--dir', dir]);
  t.equal(broken.status, 1);
  t.match(broken.err, /AUDIT_BROKEN: audit chain broken at record 3/);
});

t.test('the built binary serves, answers the CLI, and stops on SIGTERM', async (t) => {
  const bin = fileURLToPath(new URL('../../dist/agent/cli/main.js', import.meta.url));
  const binDir = join(work, 'bin-ca');
  t.equal((await cli(['ca', 'init', '--trust-domain', TD, '--dir', binDir])).status, 0);
  const child = spawn(
    process.execPath,
    [bin, 'ca', 'serve', '--dir', binDir, '--listen', '127.0.0.1:0', '--log-level', 'info'],
    {
      env: { ...process.env, ...baseEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /"event":"ca.started","address":"([^"]+)"/.exec(stdout);
      if (match) resolve(match[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`ca serve exited ${code}: ${stdout}${stderr}`)));
  });
  const status = await cli(['ca', 'status', '--dir', binDir, '--ca-addr', address]);
  t.equal(status.status, 0, status.err);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
  t.match(stdout, /"event":"ca.stopped"/);
});
