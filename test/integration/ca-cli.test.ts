// The `palisade ca` CLI against a real CA: every command of the contract runs
// in-process through the same commander program the binary uses, and the
// binary itself serves and stops on SIGTERM. It guarantees that the documented
// commands work, print stable JSON, and fail with one clear line and a
// non-zero status.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import t from 'tap';
import { runCli } from '../../agent/cli/program.js';
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
