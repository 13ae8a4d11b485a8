// The pure helpers of the comparison benchmark: wrk's result line, the
// peers' configurations, the latency chart, headline figures, ratios and the
// issue's floors, response framing and process trees.
import t from 'tap';
import { isCompleteResponse, median } from '../bench/lib/agent-footprint.js';
import { formatMarkdownTable, renderCompareChart } from '../bench/lib/compare-format.js';
import {
  checkTargets,
  fileStamp,
  headlineOf,
  ratioOf,
  type CompareReport,
  type MeteredWindow,
  type PathFigures,
} from '../bench/lib/compare-report.js';
import { parseCompareSettings } from '../bench/lib/compare-settings.js';
import { logTicks, renderLatencyChart } from '../bench/lib/latency-chart.js';
import { planPeerLaunch, type PeerInstancePlan } from '../bench/lib/peer-configs.js';
import { descendantsOf } from '../bench/lib/process-tree.js';
import { parseWrkResult, type WrkResult } from '../bench/lib/wrk-load.js';

const cert = {
  chainPath: '/certs/x.chain.pem',
  keyPath: '/certs/x.key.pem',
  combinedPath: '/certs/x.combined.pem',
  bundlePath: '/ca/bundle.pem',
  dnsName: 'server.bench.local',
};

const plan = (side: 'client' | 'server'): PeerInstancePlan => ({
  side,
  dir: `/run/${side}`,
  listenAddress: '127.0.0.1:1001',
  forwardAddress: '127.0.0.1:1002',
  cert,
  serverName: 'server.bench.local',
});

const meter = (cpu: number, rssBytes: number): MeteredWindow => ({
  wallSeconds: 2,
  proxyCpuSeconds: cpu,
  proxyRssMaxBytes: rssBytes,
  othersCpuPercent: 0,
});

const load = (rps: number, p99Ms: number): WrkResult => ({
  requests: rps * 2,
  requestsPerSecond: rps,
  durationSeconds: 2,
  errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
  p50Ms: p99Ms / 4,
  p90Ms: p99Ms / 2,
  p99Ms,
  p999Ms: p99Ms * 2,
  maxMs: p99Ms * 3,
  wrkCpuSeconds: 1,
});

const pathFigures = (path: PathFigures['path'], rps: number, p99Ms: number): PathFigures => ({
  path,
  keepAlive: { load: load(rps, p99Ms), meter: meter(1, 30e6) },
  newConnection: { load: load(rps / 10, p99Ms * 5), meter: meter(2, 40e6) },
  bulk: {
    result: { bytes: 1e8, seconds: 1, megabytesPerSecond: rps / 100 },
    meter: meter(0.5, 35e6),
  },
});

t.test('parses the JSON line of the Lua done hook into milliseconds', async (t) => {
  const result = parseWrkResult(
    JSON.stringify({
      requests: 2000,
      durationUs: 2_000_000,
      bytes: 1,
      connect: 1,
      read: 0,
      write: 0,
      status: 2,
      timeout: 0,
      p50Us: 1500,
      p90Us: 2500,
      p99Us: 9000,
      p999Us: 20_000,
      maxUs: 30_000,
      stat: '1 (wrk) S 1 1 1 0 -1 0 0 0 0 0 150 50 0 0',
    }),
  );
  t.equal(result.requestsPerSecond, 1000);
  t.same([result.p50Ms, result.p90Ms, result.p99Ms, result.p999Ms], [1.5, 2.5, 9, 20]);
  t.equal(result.errors.status, 2);
  t.ok(result.wrkCpuSeconds > 0);
});

t.test('HAProxy demands and presents certificates with TLS 1.3 on both hops', async (t) => {
  const server = planPeerLaunch('haproxy', plan('server'));
  t.match(
    server.config,
    /bind 127\.0\.0\.1:1001 ssl crt \/certs\/x\.combined\.pem ca-file \/ca\/bundle\.pem verify required ssl-min-ver TLSv1\.3/,
  );
  t.match(server.config, /server next 127\.0\.0\.1:1002\n/);
  const client = planPeerLaunch('haproxy', plan('client'));
  t.match(
    client.config,
    /server next 127\.0\.0\.1:1002 ssl crt \/certs\/x\.combined\.pem .*verify required verifyhost server\.bench\.local/,
  );
  t.match(client.config, /mode tcp/);
  t.notMatch(client.config, /nbthread/);
  t.same(client.args, ['-db', '-f', '{config}']);
});

t.test(
  'stunnel requires a verified chain and TLS 1.3, checking the host on the client side',
  async (t) => {
    const server = planPeerLaunch('stunnel', plan('server'));
    t.match(server.config, /verifyChain = yes/);
    t.match(server.config, /sslVersionMin = TLSv1\.3/);
    t.notMatch(server.config, /client = yes/);
    const client = planPeerLaunch('stunnel', plan('client'));
    t.match(client.config, /client = yes\ncheckHost = server\.bench\.local/);
    t.match(client.config, /foreground = yes/);
  },
);

t.test(
  'nginx loads the stream module, verifies client certificates and runs auto workers',
  async (t) => {
    const server = planPeerLaunch('nginx', plan('server'));
    t.match(server.config, /^load_module .*ngx_stream_module\.so;/);
    t.match(server.config, /worker_processes auto;/);
    t.match(server.config, /listen 127\.0\.0\.1:1001 ssl;/);
    t.match(server.config, /ssl_verify_client on;/);
    t.match(server.config, /ssl_protocols TLSv1\.3;/);
    const client = planPeerLaunch('nginx', plan('client'));
    t.match(client.config, /proxy_ssl_verify on;/);
    t.match(client.config, /proxy_ssl_name server\.bench\.local;/);
    t.match(client.config, /proxy_ssl_verify_depth 2;/);
    t.ok(client.args.includes('-e'));
  },
);

t.test('draws one line and legend entry per path on a log axis', async (t) => {
  const svg = renderLatencyChart({
    title: 'a <title> & more',
    subtitle: 'sub',
    percentiles: ['p50', 'p90', 'p99', 'p99.9'],
    series: [
      { name: 'direct', valuesMs: [0.5, 1, 3, 8] },
      { name: 'proxy', valuesMs: [1, 2, 9, 40] },
    ],
  });
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.equal(svg.match(/<polyline /g)?.length, 2);
  t.equal(svg.match(/<circle /g)?.length, 8);
  t.match(svg, /a &lt;title&gt; &amp; more/);
  t.match(svg, />proxy<\/text>/);
  t.match(svg, /<\/svg>\n$/);
});

t.test('log ticks run 1, 2, 5 per decade and end on a power of ten', async (t) => {
  t.same(logTicks(-1, 1), [0.1, 0.2, 0.5, 1, 2, 5, 10]);
});

t.test('headline figures sum proxy CPU and take the highest RSS over windows', async (t) => {
  const headline = headlineOf(pathFigures('haproxy', 8000, 4));
  t.equal(headline.keepAliveRps, 8000);
  t.equal(headline.newConnectionRps, 800);
  t.equal(headline.bulkMBps, 80);
  t.equal(headline.proxyCpuSeconds, 3.5);
  t.equal(headline.proxyPeakRssMB, 40);
  const direct = headlineOf(pathFigures('direct', 20000, 1));
  t.equal(direct.proxyCpuSeconds, undefined);
});

t.test('ratios divide figure by figure and skip what the base lacks', async (t) => {
  t.same(ratioOf({ keepAliveRps: 4000, p99Ms: 6 }, { keepAliveRps: 8000 }), { keepAliveRps: 0.5 });
  t.same(ratioOf({ keepAliveRps: 1 }, undefined), {});
});

t.test('checks the issue floors against HAProxy and stunnel', async (t) => {
  const headlines = {
    palisade: headlineOf(pathFigures('palisade', 7000, 5)),
    haproxy: headlineOf(pathFigures('haproxy', 8000, 4)),
    stunnel: headlineOf(pathFigures('stunnel', 7500, 4)),
  };
  const targets = checkTargets(headlines, {
    memory: {
      idleRssBytes: { a: 50e6, b: 55e6 },
      held: { count: 1000, openMs: 100, rssBytes: { a: 90e6, b: 130e6 } },
      peakRssBytes: { a: 1, b: 1 },
    },
  });
  const met = Object.fromEntries(targets.map((c) => [c.target, c.isMet]));
  t.equal(met['keep-alive req/s >= 0.8x HAProxy'], true);
  t.equal(met['keep-alive req/s > stunnel'], false);
  t.equal(met['p99 <= 1.5x HAProxy'], true);
  t.equal(met['agent RSS idle <= 60 MB'], true);
  t.equal(met['agent RSS with 1000 connections <= 120 MB'], false);
  t.equal(met['start to ready < 1 s (P-256)'], undefined);
});

t.test('renders the README table with ratios to HAProxy and the chart per path', async (t) => {
  const paths = [pathFigures('direct', 20000, 1), pathFigures('haproxy', 8000, 4)];
  const headlines = {
    direct: headlineOf(paths[0] as PathFigures),
    haproxy: headlineOf(paths[1] as PathFigures),
  };
  const report = {
    startedAt: '2026-12-03T10:00:00.000Z',
    machine: { cpuModel: 'cpu', cores: 2, node: 'v20', os: 'linux', totalMemoryBytes: 1 },
    settings: { connections: 32 },
    paths,
    headlines,
    ratios: { toDirect: {}, toHaproxy: { direct: ratioOf(headlines.direct, headlines.haproxy) } },
  } as unknown as CompareReport;
  const table = formatMarkdownTable(report);
  t.match(table, /\| direct +\| +20,000 \(x2\.5\) \|/);
  t.match(table, /\| HAProxy \| +8,000 \| +1 \| +4 \|/);
  t.match(table, /\n\| -{7} \| -+: \|/);
  t.equal(renderCompareChart(report).match(/<polyline /g)?.length, 2);
  t.equal(fileStamp(report.startedAt), '2026-12-03T10-00-00-000Z');
});

t.test('a response is complete once its Content-Length body has arrived', async (t) => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n';
  t.notOk(isCompleteResponse('HTTP/1.1 200 OK\r\nContent-Le'));
  t.notOk(isCompleteResponse(`${head}ab`));
  t.ok(isCompleteResponse(`${head}abcd`));
  t.ok(isCompleteResponse('HTTP/1.1 204 No Content\r\n\r\n'));
});

t.test('median takes the middle value, or the mean of the two middle ones', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([]), 0);
});

t.test('finds every descendant of the roots, and only those', async (t) => {
  const parents = new Map([
    [10, 1],
    [11, 10],
    [12, 10],
    [13, 12],
    [20, 1],
  ]);
  t.same(
    descendantsOf([10], parents).sort((a, b) => a - b),
    [10, 11, 12, 13],
  );
  t.same(
    descendantsOf([20, 13], parents).sort((a, b) => a - b),
    [13, 20],
  );
});

t.test('--only keeps direct as the baseline and --quick shortens the windows', async (t) => {
  const settings = parseCompareSettings(['--quick', '--only', 'haproxy, palisade']);
  t.same(settings?.paths, ['direct', 'palisade', 'haproxy']);
  t.equal(settings?.durationSeconds, 2);
  t.equal(parseCompareSettings(['--duration', '5'])?.durationSeconds, 5);
  t.equal(parseCompareSettings(['--help']), undefined);
  t.throws(() => parseCompareSettings(['--only', 'envoy']), /unknown: envoy/);
  t.throws(() => parseCompareSettings(['--connections', '0']), /positive integer/);
});
