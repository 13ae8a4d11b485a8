import t from 'tap';
import { formatDurationSeconds, parseDurationSeconds } from '../../../certs/duration.js';
import { formatHostPort, parseHostPort } from '../../../certs/host-port.js';
import {
  adminId,
  caId,
  isSpiffeId,
  parseSpiffeId,
  parseTrustDomain,
  workloadId,
} from '../../../certs/spiffe-id.js';

t.test('parses a workload SPIFFE ID into trust domain and path', async (t) => {
  t.same(parseSpiffeId('spiffe://cluster.local/ns/shop/sa/web'), {
    uri: 'spiffe://cluster.local/ns/shop/sa/web',
    trustDomain: 'cluster.local',
    path: '/ns/shop/sa/web',
  });
  t.same(parseSpiffeId('spiffe://example.org'), {
    uri: 'spiffe://example.org',
    trustDomain: 'example.org',
    path: '',
  });
});

t.test('refuses every form the SPIFFE ID spec forbids', async (t) => {
  const bad = [
    '',
    'http://cluster.local/ns/a',
    'SPIFFE://cluster.local/ns/a',
    'spiffe://',
    'spiffe:///ns/a',
    'spiffe://Cluster.local/ns/a',
    'spiffe://cluster.local:8080/ns/a',
    'spiffe://user@cluster.local/ns/a',
    'spiffe://cluster.local/ns/a?x=1',
    'spiffe://cluster.local/ns/a#frag',
    'spiffe://cluster.local/ns//a',
    'spiffe://cluster.local/ns/./a',
    'spiffe://cluster.local/ns/../a',
    'spiffe://cluster.local/ns/a/',
    'spiffe://cluster.local/ns/a b',
    'spiffe://cluster.local/ns/%41',
    `spiffe://cluster.local/${'a'.repeat(2048)}`,
  ];
  for (const input of bad) {
    t.throws(
      () => parseSpiffeId(input),
      { code: 'SPIFFE_ID_INVALID' },
      JSON.stringify(input.slice(0, 60)),
    );
    t.notOk(isSpiffeId(input));
  }
});

t.test('builds workload, CA and admin identities', async (t) => {
  t.equal(workloadId('td.test', 'shop', 'web'), 'spiffe://td.test/ns/shop/sa/web');
  t.equal(caId('td.test'), 'spiffe://td.test/ns/palisade-system/sa/palisade-ca');
  t.equal(adminId('td.test'), 'spiffe://td.test/palisade/admin');
  t.throws(() => workloadId('td.test', 'Shop', 'web'), { code: 'SPIFFE_ID_INVALID' });
  t.throws(() => parseTrustDomain('bad_domain!'), { code: 'SPIFFE_ID_INVALID' });
  t.equal(parseTrustDomain('a-b.c_d'), 'a-b.c_d');
});

t.test('parses and formats durations with units', async (t) => {
  t.equal(parseDurationSeconds('90s'), 90);
  t.equal(parseDurationSeconds('10m'), 600);
  t.equal(parseDurationSeconds('1h'), 3600);
  t.equal(parseDurationSeconds('30d'), 2592000);
  t.equal(parseDurationSeconds('42'), 42);
  t.throws(() => parseDurationSeconds('soon'), { code: 'DURATION_INVALID' });
  t.throws(() => parseDurationSeconds('1.5h'), { code: 'DURATION_INVALID' });
  t.equal(formatDurationSeconds(3600), '1h');
  t.equal(formatDurationSeconds(90), '90s');
});

t.test('parses and formats HOST:PORT addresses, IPv6 bracketed', async (t) => {
  t.same(parseHostPort('127.0.0.1:15112'), { host: '127.0.0.1', port: 15112 });
  t.same(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  t.same(parseHostPort(':15106', '0.0.0.0'), { host: '0.0.0.0', port: 15106 });
  t.same(parseHostPort('ca.palisade-system.svc:15112'), {
    host: 'ca.palisade-system.svc',
    port: 15112,
  });
  for (const bad of ['nonsense', '127.0.0.1', '127.0.0.1:99999', 'a:b:c']) {
    t.throws(() => parseHostPort(bad), { code: 'ADDRESS_INVALID' }, bad);
  }
  t.equal(formatHostPort({ host: '::1', port: 5 }), '[::1]:5');
});
