// The CA's security-event feed without gRPC: batch validation, the rate
// limit per reporter, and queries and watches over a real SQLite store.
import path from 'node:path';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import {
  checkEventBatch,
  EventFeed,
  MAX_DETAIL_JSON_BYTES,
  MAX_EVENTS_PER_BATCH,
  ReporterRateLimiter,
  type SecurityEventWire,
} from '../../../certs/events/index.js';
import { createCaMetrics } from '../../../certs/metrics.js';
import { CaStore, type StoredSecurityEvent } from '../../../certs/store/index.js';
import { captureLog } from '../../helpers/log-capture.js';

const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const API = `spiffe://${TD}/ns/payments/sa/api`;
const NOW_MS = Date.parse('2030-01-01T00:00:00Z');

function wire(fields: Partial<SecurityEventWire> = {}): SecurityEventWire {
  return {
    kind: 'peer.rejected',
    atUnixMs: NOW_MS - 1000,
    peerId: API,
    direction: 'inbound',
    reason: 'not-allowed',
    rule: 'deny[0]',
    detailJson: '{"port": 8080}',
    ...fields,
  };
}

function problemsOf(events: SecurityEventWire[]): readonly string[] {
  try {
    checkEventBatch(events, NOW_MS);
  } catch (err) {
    t.equal((err as { code?: string }).code, 'EVENTS_INVALID');
    return (err as { problems: readonly string[] }).problems;
  }
  throw new Error('batch was accepted');
}

t.test('a good batch comes back in store form with compact detail', (t) => {
  const [event, bare] = checkEventBatch(
    [wire(), wire({ detailJson: '', peerId: '', direction: '' })],
    NOW_MS,
  );
  t.same(event, {
    kind: 'peer.rejected',
    atMs: NOW_MS - 1000,
    peerId: API,
    direction: 'inbound',
    reason: 'not-allowed',
    rule: 'deny[0]',
    detailJson: '{"port":8080}',
  });
  t.equal(bare?.detailJson, '{}', 'empty detail is an empty object');
  t.same(checkEventBatch([], NOW_MS), []);
  t.end();
});

t.test('every bad field of every event is named', (t) => {
  const problems = problemsOf([
    wire(),
    wire({ kind: 'Not An Event', direction: 'sideways' }),
    wire({ atUnixMs: 0, peerId: 'web.shop.svc' }),
    wire({ detailJson: '[1,2]', reason: 'x'.repeat(300) }),
    wire({ detailJson: '{oops', atUnixMs: NOW_MS + 3_600_000 }),
    wire({ detailJson: JSON.stringify({ pad: 'x'.repeat(MAX_DETAIL_JSON_BYTES) }) }),
  ]);
  t.match(problems, [
    /^events\[1\]\.kind: "Not An Event" is not a dotted event name/,
    /^events\[1\]\.direction: "sideways": must be inbound, outbound or empty/,
    /^events\[2\]\.at_unix_ms: missing/,
    /^events\[2\]\.peer_id: not a SPIFFE ID/,
    /^events\[3\]\.reason: longer than 256/,
    /^events\[3\]\.detail_json: must be a JSON object/,
    /^events\[4\]\.at_unix_ms: more than 10m in the future/,
    /^events\[4\]\.detail_json: not JSON/,
    /^events\[5\]\.detail_json: larger than 4096 bytes/,
  ]);
  t.equal(problems.length, 9);
  t.end();
});

t.test('a batch over the size limit is refused as a whole', (t) => {
  const events = Array.from({ length: MAX_EVENTS_PER_BATCH + 1 }, () => wire());
  t.match(problemsOf(events), [/^events: 501 in one batch, at most 500/]);
  t.end();
});

t.test('the rate limit admits bursts, refills over time, and is per reporter', (t) => {
  let nowMs = 0;
  const limiter = new ReporterRateLimiter({ perSecond: 10, burst: 20, nowMs: () => nowMs });
  t.ok(limiter.take(WEB, 20), 'a full burst passes');
  t.notOk(limiter.take(WEB, 1), 'then the bucket is empty');
  t.ok(limiter.take(API, 5), 'another reporter has its own bucket');
  nowMs += 500;
  t.notOk(limiter.take(WEB, 6), 'half a second refills 5, not 6');
  t.ok(limiter.take(WEB, 5), 'a refused batch took nothing');
  nowMs += 60_000;
  t.ok(limiter.take(WEB, 20), 'refills up to the burst');
  t.notOk(limiter.take(WEB, 1), 'and no further');
  t.end();
});

function makeFeed(t: Test, limiter?: ReporterRateLimiter) {
  const store = CaStore.open(path.join(t.testdir(), 'ca.db'));
  t.teardown(() => store.close());
  const registry = new Registry();
  const metrics = createCaMetrics(registry);
  const feed = new EventFeed({
    store: store.events,
    log: captureLog('ca').log,
    metrics,
    trustDomain: TD,
    now: () => new Date(NOW_MS),
    ...(limiter ? { limiter } : {}),
  });
  const metric = async (name: string) =>
    (await registry.getSingleMetric(name)?.get())?.values.reduce((sum, v) => sum + v.value, 0);
  return { store, feed, metric };
}

t.test('a watch gets the stored matches, then each new match once', async (t) => {
  const { feed, metric } = makeFeed(t);
  feed.report(WEB, [wire({ reason: 'old-1' }), wire({ reason: 'old-2', peerId: '' })]);
  const live: StoredSecurityEvent[] = [];
  const watch = feed.watch({ identityPattern: 'ns/payments/*' }, (e) => live.push(e));
  t.same(
    watch.stored.map((e) => e.reason),
    ['old-1'],
    'only the stored event naming a payments identity',
  );
  t.equal(feed.report(API, [wire({ reason: 'new', peerId: WEB })]), 1);
  feed.report(WEB, [wire({ reason: 'unrelated', peerId: '' })]);
  t.same(
    live.map((e) => [e.reason, e.reporterId]),
    [['new', API]],
  );
  watch.stop();
  feed.report(API, [wire({ reason: 'after-stop' })]);
  t.equal(live.length, 1, 'nothing after stop');
  t.same(
    feed.list({ limit: 2 }).map((e) => e.reason),
    ['unrelated', 'after-stop'],
  );
  t.equal(await metric('palisade_ca_events_stored_total'), 5);
  t.end();
});

t.test('a refused batch stores nothing and is counted by reason', async (t) => {
  const limiter = new ReporterRateLimiter({
    perSecond: 1,
    burst: MAX_EVENTS_PER_BATCH,
    nowMs: () => 0,
  });
  const { feed, store, metric } = makeFeed(t, limiter);
  t.throws(() => feed.report(WEB, [wire(), wire({ kind: '' })]), { code: 'EVENTS_INVALID' });
  t.equal(
    feed.report(
      WEB,
      Array.from({ length: 499 }, () => wire()),
    ),
    499,
  );
  t.throws(() => feed.report(WEB, [wire(), wire()]), { code: 'EVENTS_RATE_LIMITED' });
  t.equal(feed.report(API, [wire()]), 1, 'another reporter is not held back');
  t.equal(store.events.count(), 500);
  t.equal(await metric('palisade_ca_events_received_total'), 504);
  t.equal(await metric('palisade_ca_events_refused_total'), 4, '2 invalid, 2 rate-limited');
  t.end();
});

t.test('out-of-bounds queries are refused with every problem named', (t) => {
  const { feed } = makeFeed(t);
  t.throws(() => feed.list({ limit: 10_001, sinceUnixMs: -5 }), {
    code: 'EVENTS_QUERY_INVALID',
    problems: [/^limit: 10001/, /^since_unix_ms: -5/],
  });
  t.throws(() => feed.watch({ identityPattern: 'ns/a*' }, () => {}), { code: 'POLICY_INVALID' });
  t.end();
});
