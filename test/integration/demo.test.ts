// `palisade demo` as the README's quickstart runs it: a CA and three services
// behind agents on loopback. It guarantees the demo exits 0 only when web may
// call orders, batch and plaintext may not, and a live revocation of web cuts
// its open connection and its next call.
import t from 'tap';
import { runCli } from '../../agent/cli/program.js';

t.test('the demo shows allowed, denied and revoked calls and exits 0', async (t) => {
  let out = '';
  let err = '';
  const status = await runCli(['demo'], {
    env: {},
    io: { out: (s) => void (out += s), err: (s) => void (err += s) },
    version: 'test',
    untilStopped: () => Promise.resolve(),
  });
  t.equal(status, 0, err);
  t.match(out, /1\s+web\s+orders\s+allow\s+allowed\s+allowed-by-rule/);
  t.match(out, /2\s+batch\s+orders\s+deny\s+denied\s+policy\.denied: not-in-allow-list/);
  t.match(out, /3\s+plaintext client\s+orders\s+deny\s+denied\s+peer\.rejected: plaintext/);
  t.match(out, /4\s+web\s+payments\s+allow\s+allowed\s+allowed-by-rule/);
  t.match(out, /5\s+web\s+payments\s+deny\s+denied\s+http\.denied: missing-scope payments\.read/);
  t.match(
    out,
    /6\s+web\s+orders\s+deny\s+denied\s+web revoked: open connection closed after \d+ ms/,
  );
  t.match(out, /7\s+web\s+orders\s+deny\s+denied\s+peer\.rejected: revoked/);
  t.match(out, /every call behaved as expected/);
});
