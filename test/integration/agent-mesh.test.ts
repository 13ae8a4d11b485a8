// Agents on loopback with a real CA, real sockets and real TLS: web may call
// orders, batch may not. It guarantees that an allowed path carries bytes
// intact, that every kind of refused peer is refused, logged and counted,
// that a revocation or a narrowed policy cuts live connections within a
// second, and that hostile input does not hurt the agent.
import { createHash } from 'node:crypto';
import { writeFileSync, renameSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { PeerDialer } from '../../agent/outbound/index.js';
import { TlsContextHolder } from '../../agent/tls/index.js';
import { createCsr, generateKeyPairSync } from '../../certs/x509/index.js';
import { makeCaDir, startTestCa } from '../helpers/ca-fixture.js';
import {
  closedWithin,
  dial,
  eventually,
  ping,
  roundTrip,
  startEchoApp,
  startMeshAgent,
  type MeshAgent,
} from '../helpers/mesh-fixture.js';

const TD = 'mesh.test';
const caDir = makeCaDir(TD);
t.teardown(() => caDir.remove());
const env = await startTestCa(caDir.dir);
t.teardown(() => env.ca.stop());
const ordersApp = await startEchoApp(t);
const webApp = await startEchoApp(t);
const policyPath = join(caDir.dir, 'orders-policy.yaml');
writeFileSync(policyPath, 'allow: [ns/shop/sa/web]\n');

const orders = await startMeshAgent(t, env, caDir.dir, {
  ns: 'shop',
  sa: 'orders',
  appPort: ordersApp.port,
  flags: { policyFile: policyPath },
});
const upstreamToOrders = (n = 0) => [`0=127.0.0.1:${orders.inboundPort}@${orders.id}`][n] as string;
const web = await startMeshAgent(t, env, caDir.dir, {
  ns: 'shop',
  sa: 'web',
  appPort: webApp.port,
  flags: { upstream: [upstreamToOrders()] },
});
const batch = await startMeshAgent(t, env, caDir.dir, {
  ns: 'jobs',
  sa: 'batch',
  appPort: webApp.port,
  flags: { upstream: [upstreamToOrders()] },
});

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function peerCredential(agent: MeshAgent) {
  const c = agent.agent.identity.credential;
  if (!c) throw new Error('no credential');
  return { key: c.keyPem, cert: c.certChainPem };
}

t.test('10 MB through an allowed path arrives byte-identical and is counted', async (t) => {
  const payload = Buffer.alloc(10 * 1024 * 1024);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
  const echoed = await roundTrip(web.upstreamPort(), payload);
  t.equal(echoed.length, payload.length);
  t.equal(sha256(echoed), sha256(payload), 'same bytes back through two agents');
  t.match(
    await orders.metrics(),
    /palisade_agent_bytes_total\{direction="inbound",flow="from_peer"\} 10485760/,
  );
  t.match(
    await web.metrics(),
    /palisade_agent_connections_total\{direction="outbound",result="allowed"\} [1-9]/,
  );
});

t.test('a denied identity is refused, logged and counted', async (t) => {
  const echoed = await roundTrip(batch.upstreamPort(), Buffer.from('hello'));
  t.equal(echoed.length, 0, 'no bytes reach the application');
  t.ok(
    await eventually(() =>
      orders.captured.events('policy.denied').some((e) => e['peer_id'] === batch.id),
    ),
    'policy.denied logged with the peer id',
  );
  t.match(
    await orders.metrics(),
    new RegExp(
      `palisade_agent_policy_denials_total\\{peer_id="${batch.id}",reason="not-in-allow-list",dry_run="false"\\} 1`,
    ),
  );
  const why = (await (await orders.admin(`/why?peer=${encodeURIComponent(batch.id)}`)).json()) as {
    allowed: boolean;
    reason: string;
  };
  t.same(
    { allowed: why.allowed, reason: why.reason },
    { allowed: false, reason: 'not-in-allow-list' },
  );
});

t.test('admin endpoints report identity, policy and readiness', async (t) => {
  const identity = (await (await orders.admin('/identity')).json()) as {
    spiffeId: string;
    serial: string;
  };
  t.equal(identity.spiffeId, orders.id);
  t.match(identity.serial, /^[0-9a-f]{32}$/);
  const policy = (await (await orders.admin('/policy')).json()) as {
    source: string;
    allow: string[];
  };
  t.same(policy.allow, ['ns/shop/sa/web']);
  t.equal(policy.source, policyPath);
  t.equal((await orders.admin('/readyz')).status, 200);
  t.equal((await orders.admin('/healthz')).status, 200);
  t.equal((await orders.admin('/why?peer=nonsense')).status, 400);
  t.equal((await orders.admin('/shutdown')).status, 405, 'shutdown needs POST');
});

t.test('strict mode refuses plaintext, TLS 1.2 and clients without a certificate', async (t) => {
  const plain = await dial(orders.inboundPort);
  plain.write('GET / HTTP/1.1\r\n\r\n');
  await closedWithin(plain, () => 0);
  t.ok(
    await eventually(() =>
      orders.captured.events('peer.rejected').some((e) => e['reason'] === 'plaintext'),
    ),
    'plaintext rejected',
  );

  const tls12 = tlsConnect({
    host: '127.0.0.1',
    port: orders.inboundPort,
    maxVersion: 'TLSv1.2',
    rejectUnauthorized: false,
  });
  const tls12Error = await new Promise<Error | undefined>((resolve) => {
    tls12.once('error', resolve);
    tls12.once('secureConnect', () => resolve(undefined));
  });
  t.ok(tls12Error, `TLS 1.2 refused: ${tls12Error?.message}`);
  t.ok(
    await eventually(() =>
      orders.captured.events('peer.rejected').some((e) => e['reason'] === 'tls-version'),
    ),
    'tls-version rejection logged',
  );

  const noCert = tlsConnect({
    host: '127.0.0.1',
    port: orders.inboundPort,
    rejectUnauthorized: false,
  });
  noCert.on('error', () => undefined);
  await closedWithin(noCert, () => 0);
  t.ok(
    await eventually(() =>
      orders.captured.events('peer.rejected').some((e) => e['reason'] === 'no-certificate'),
    ),
    'no-certificate rejected',
  );

  // A certificate from another CA (same trust domain name) is untrusted.
  const foreign = makeCaDir(TD);
  t.teardown(() => foreign.remove());
  const foreignEnv = await startTestCa(foreign.dir);
  t.teardown(() => foreignEnv.ca.stop());
  const key = generateKeyPairSync('ecdsa-p256');
  const foreignAdmin = foreignEnv.admin();
  t.teardown(() => foreignAdmin.close());
  const signed = await foreignAdmin.issue({
    spiffeId: `spiffe://${TD}/ns/shop/sa/web`,
    csrPem: createCsr({ key, spiffeId: `spiffe://${TD}/ns/shop/sa/web` }),
    ttlSeconds: 600,
  });
  const impostor = tlsConnect({
    host: '127.0.0.1',
    port: orders.inboundPort,
    rejectUnauthorized: false,
    key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: signed.certChainPem.join(''),
  });
  impostor.on('error', () => undefined);
  await closedWithin(impostor, () => 0);
  t.ok(
    await eventually(() =>
      orders.captured.events('peer.rejected').some((e) => e['reason'] === 'untrusted'),
    ),
    'foreign CA rejected as untrusted',
  );
  t.match(
    await orders.metrics(),
    /palisade_agent_peer_rejections_total\{direction="inbound",reason="plaintext"\} [1-9]/,
  );
});

t.test('garbage bytes and half-open handshakes do not hurt the agent', async (t) => {
  const garbage = await dial(orders.inboundPort);
  garbage.on('error', () => undefined);
  garbage.write(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x00, 0x13, 0x37, 0x42]));
  garbage.write(Buffer.alloc(4096, 0xab));
  await closedWithin(garbage, () => 0);
  const silent = await dial(orders.inboundPort);
  silent.on('error', () => undefined);
  const halfOpen = await dial(orders.inboundPort);
  halfOpen.on('error', () => undefined);
  halfOpen.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
  const started = performance.now();
  await Promise.all([closedWithin(silent, () => started), closedWithin(halfOpen, () => started)]);
  t.pass('idle and half-open connections were closed by the handshake timeout');
  const echoed = await roundTrip(web.upstreamPort(), Buffer.from('still serving'));
  t.equal(echoed.toString(), 'still serving');
});

t.test('every refused inbound handshake is logged once as handshake.failed', async (t) => {
  // The two subtests above refused plaintext, TLS 1.2, a client without a
  // certificate, a foreign CA, garbage and silent connections.
  const failed = orders.captured.events('handshake.failed');
  const rejected = orders.captured.events('peer.rejected');
  t.equal(failed.length, rejected.length, 'one handshake.failed per refused connection');
  t.same([...new Set(failed.map((e) => e['reason']))].sort(), [
    'handshake-timeout',
    'no-client-cert',
    'peer-untrusted',
    'protocol',
  ]);
  t.ok(
    failed.every((e) => e['direction'] === 'inbound' && e['remote_address'] === '127.0.0.1'),
    'each names the direction and the remote address',
  );
  t.ok(
    failed.some((e) => e['reason'] === 'peer-untrusted' && e['peer_id'] === web.id),
    'a refused certificate names the identity it claimed',
  );
});

t.test('repeat dials to a peer resume the TLS session and still verify it', async (t) => {
  const credential = web.agent.identity.credential;
  const trust = web.agent.identity.trust;
  if (!credential || !trust) throw new Error('web agent not ready');
  const holder = new TlsContextHolder();
  holder.update({
    keyPem: credential.keyPem,
    certChainPem: credential.certChainPem,
    trustBundlePem: trust.bundlePem,
  });
  const dialer = new PeerDialer({ tls: holder, trust: () => trust, trustDomain: TD });
  const resumed: boolean[] = [];
  for (let i = 0; i < 12; i++) {
    const peer = await dialer.dial('127.0.0.1', orders.inboundPort, orders.id);
    t.equal(peer.spiffeId, orders.id);
    // The echo answer comes after the peer's session tickets.
    t.equal(await ping(peer.socket), 'ping');
    resumed.push(peer.resumed);
    peer.socket.destroy();
  }
  t.notOk(resumed[0], 'the first dial makes a full handshake');
  t.same(resumed.slice(1), new Array<boolean>(11).fill(true), 'every later dial resumes');
});

t.test('a revocation closes a live connection within a second', async (t) => {
  const live = await dial(web.upstreamPort());
  live.on('error', () => undefined);
  t.equal(await ping(live), 'ping');
  const admin = env.admin();
  t.teardown(() => admin.close());
  const startedAt = performance.now();
  const closed = closedWithin(live, () => startedAt);
  await admin.revoke({ spiffeId: web.id, reason: 'key-compromise' });
  const ms = await closed;
  t.ok(ms < 1000, `closed ${ms.toFixed(0)} ms after the revocation`);
  t.ok(
    await eventually(() =>
      orders.captured.events('peer.revoked').some((e) => e['peer_id'] === web.id),
    ),
    'peer.revoked logged',
  );
  const refused = await roundTrip(web.upstreamPort(), Buffer.from('again'));
  t.equal(refused.length, 0, 'new connections from the revoked identity are refused');
  await admin.unrevoke({ spiffeId: web.id });
});

t.test(
  'a narrowed policy file closes live connections it no longer allows; a bad file changes nothing',
  async (t) => {
    const web2 = await startMeshAgent(t, env, caDir.dir, {
      ns: 'shop',
      sa: 'web',
      appPort: webApp.port,
      flags: { upstream: [upstreamToOrders()] },
    });
    const live = await dial(web2.upstreamPort());
    live.on('error', () => undefined);
    live.write('ping');
    await new Promise<void>((resolve) => live.once('data', () => resolve()));

    writeFileSync(policyPath, 'allow: [ns/shop/sa/web, "ns/sho*"]\n');
    t.ok(
      await eventually(() => orders.captured.events('policy.rejected').length > 0),
      'bad policy rejected',
    );
    t.notOk(live.destroyed, 'the live connection survives a bad policy file');

    const startedAt = performance.now();
    const closed = closedWithin(live, () => startedAt);
    writeFileSync(`${policyPath}.tmp`, 'allow: [ns/ops/*]\n');
    renameSync(`${policyPath}.tmp`, policyPath);
    const ms = await closed;
    t.ok(ms < 2000, `closed ${ms.toFixed(0)} ms after the policy changed`);
    const policy = (await (await orders.admin('/policy')).json()) as { allow: string[] };
    t.same(policy.allow, ['ns/ops/*']);
    writeFileSync(policyPath, 'allow: [ns/shop/sa/web]\n');
    t.ok(
      await eventually(() => orders.agent.policy().allow?.[0]?.text === 'ns/shop/sa/web'),
      'policy restored',
    );
  },
);

t.test('permissive mode accepts plaintext, and dry run logs what it would deny', async (t) => {
  const app = await startEchoApp(t);
  const relaxed = await startMeshAgent(t, env, caDir.dir, {
    ns: 'legacy',
    sa: 'api',
    appPort: app.port,
    flags: { mode: 'permissive', allow: ['ns/shop/sa/web'], dryRunPolicy: true },
  });
  const echoed = await roundTrip(relaxed.inboundPort, Buffer.from('plain hello'));
  t.equal(echoed.toString(), 'plain hello', 'plaintext reaches the app');
  t.match(
    await relaxed.metrics(),
    /palisade_agent_connections_total\{direction="inbound",result="plaintext"\} 1/,
  );

  const caller = await startMeshAgent(t, env, caDir.dir, {
    ns: 'jobs',
    sa: 'other',
    appPort: app.port,
    flags: { upstream: [`0=127.0.0.1:${relaxed.inboundPort}`] },
  });
  const through = await roundTrip(caller.upstreamPort(), Buffer.from('dry run'));
  t.equal(through.toString(), 'dry run', 'dry run lets the call through');
  t.ok(
    relaxed.captured.events('policy.dry_run_denied').some((e) => e['peer_id'] === caller.id),
    'policy.dry_run_denied logged',
  );
});

t.test('an outbound dial to the wrong identity is refused', async (t) => {
  const wrong = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'web',
    appPort: webApp.port,
    flags: { upstream: [`0=127.0.0.1:${orders.inboundPort}@spiffe://${TD}/ns/shop/sa/payments`] },
  });
  const echoed = await roundTrip(wrong.upstreamPort(), Buffer.from('x'));
  t.equal(echoed.length, 0);
  t.ok(
    wrong.captured.events('peer.rejected').some((e) => e['reason'] === 'unexpected-identity'),
    'unexpected-identity logged',
  );
  t.same(
    wrong.captured.events('handshake.failed').map((e) => [e['reason'], e['remote_address']]),
    [['unexpected-identity', `127.0.0.1:${orders.inboundPort}`]],
    'and logged once as handshake.failed',
  );
  void peerCredential;
});

t.test('an outbound handshake with a peer that speaks no TLS is logged as failed', async (t) => {
  const app = await startEchoApp(t);
  const misdirected = await startMeshAgent(t, env, caDir.dir, {
    ns: 'jobs',
    sa: 'misdirected',
    appPort: app.port,
    // An echo server answers the ClientHello with the ClientHello.
    flags: { upstream: [`0=127.0.0.1:${app.port}`] },
  });
  const echoed = await roundTrip(misdirected.upstreamPort(), Buffer.from('x'));
  t.equal(echoed.length, 0, 'nothing reaches the application');
  t.ok(
    await eventually(() => misdirected.captured.events('handshake.failed').length > 0),
    'handshake.failed logged',
  );
  const [failed] = misdirected.captured.events('handshake.failed');
  t.match(failed, {
    direction: 'outbound',
    reason: /^(protocol|tls-error)$/,
    remote_address: `127.0.0.1:${app.port}`,
  });
  t.equal(misdirected.captured.events('handshake.failed').length, 1, 'logged once');
});

t.test('POST /shutdown stops the agent after draining', async (t) => {
  const app = await startEchoApp(t);
  const doomed = await startMeshAgent(t, env, caDir.dir, {
    ns: 'jobs',
    sa: 'job',
    appPort: app.port,
  });
  const res = await doomed.admin('/shutdown', { method: 'POST' });
  t.equal(res.status, 202);
  await doomed.agent.shutdownRequested;
  await doomed.agent.stop(100);
  t.ok(doomed.captured.events('agent.stopped').length === 1);
  t.rejects(netConnectOnce(doomed.inboundPort), 'inbound port closed');
});

function netConnectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

t.test('a connection cap refuses connections beyond it and counts them', async (t) => {
  const app = await startEchoApp(t);
  const capped = await startMeshAgent(t, env, caDir.dir, {
    ns: 'jobs',
    sa: 'capped',
    appPort: app.port,
    flags: { inboundMaxConnections: '2' },
  });
  const held = [await dial(capped.inboundPort), await dial(capped.inboundPort)];
  held.forEach((s) => s.on('error', () => undefined));
  t.teardown(() => held.forEach((s) => s.destroy()));
  const third = await dial(capped.inboundPort);
  third.on('error', () => undefined);
  await closedWithin(third, () => 0);
  t.match(
    await capped.metrics(),
    /palisade_agent_connections_total\{direction="inbound",result="overloaded"\} 1/,
  );
  t.notOk(
    held.some((s) => s.destroyed),
    'the connections under the cap stay open',
  );
});

/** The value of the sample `name{labels}` in a Prometheus text exposition, 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const INBOUND_HANDSHAKES = 'palisade_agent_handshake_duration_seconds_count{direction="inbound"}';

t.test('multiplexed peers: many app connections over one mutual-TLS session', async (t) => {
  const app = await startEchoApp(t);
  const pay = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'pay',
    appPort: app.port,
    flags: { allow: ['ns/jobs/sa/muxer'] },
  });
  const muxer = await startMeshAgent(t, env, caDir.dir, {
    ns: 'jobs',
    sa: 'muxer',
    appPort: app.port,
    flags: { upstream: [`0=127.0.0.1:${pay.inboundPort}@${pay.id}`] },
  });
  const handshakesBefore = sample(await pay.metrics(), INBOUND_HANDSHAKES);

  await t.test('200 short app connections cost one TLS handshake', async (t) => {
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, n) =>
          roundTrip(muxer.upstreamPort(), Buffer.from(`call ${batch}.${n}`)),
        ),
      );
      answers.forEach((a, n) => {
        if (a.toString() !== `call ${batch}.${n}`) t.fail(`call ${batch}.${n} got ${a}`);
      });
    }
    const payMetrics = await pay.metrics();
    t.equal(sample(payMetrics, INBOUND_HANDSHAKES) - handshakesBefore, 1, 'one inbound handshake');
    t.equal(sample(payMetrics, 'palisade_agent_mux_streams_total{direction="inbound"}'), 200);
    t.equal(sample(payMetrics, 'palisade_agent_mux_sessions{direction="inbound"}'), 1);
    t.equal(
      sample(payMetrics, 'palisade_agent_connections_total{direction="inbound",result="allowed"}'),
      200,
      'each stream is counted as a connection',
    );
    const muxerMetrics = await muxer.metrics();
    t.equal(sample(muxerMetrics, 'palisade_agent_mux_streams_total{direction="outbound"}'), 200);
    t.equal(
      sample(muxerMetrics, 'palisade_agent_handshake_duration_seconds_count{direction="outbound"}'),
      1,
    );
  });

  await t.test('a stalled app connection does not block another', async (t) => {
    const stalled = await dial(muxer.upstreamPort());
    stalled.on('error', () => undefined);
    t.teardown(() => stalled.destroy());
    stalled.pause();
    // The echo answers into a client that does not read: its stream's credit
    // runs out and the writes back up, on that stream only.
    // Larger than every kernel and stream buffer on the path put together.
    const big = Buffer.alloc(48 * 1024 * 1024, 0x5a);
    let isFlushed = false;
    stalled.write(big, () => (isFlushed = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const payload = Buffer.alloc(2 * 1024 * 1024, 0x33);
    const echoed = await roundTrip(muxer.upstreamPort(), payload);
    t.equal(sha256(echoed), sha256(payload), 'the other connection carried 2 MB both ways');
    t.notOk(isFlushed, 'the stalled connection is still backed up');
    t.equal(sample(await pay.metrics(), INBOUND_HANDSHAKES) - handshakesBefore, 1, 'same session');
  });

  await t.test('a mux-off dialer and a raw TLS client still work against it', async (t) => {
    const plainDialer = await startMeshAgent(t, env, caDir.dir, {
      ns: 'jobs',
      sa: 'muxer',
      appPort: app.port,
      flags: { upstream: [`0=127.0.0.1:${pay.inboundPort}@${pay.id}`], peerMux: 'off' },
    });
    const before = sample(await pay.metrics(), INBOUND_HANDSHAKES);
    for (let i = 0; i < 3; i++) {
      const echoed = await roundTrip(plainDialer.upstreamPort(), Buffer.from(`plain ${i}`));
      t.equal(echoed.toString(), `plain ${i}`);
    }
    const payMetrics = await pay.metrics();
    t.equal(sample(payMetrics, INBOUND_HANDSHAKES) - before, 3, 'one handshake per connection');
    t.equal(
      sample(payMetrics, 'palisade_agent_mux_streams_total{direction="inbound"}'),
      202,
      'the mux-off connections are not streams',
    );

    const credential = plainDialer.agent.identity.credential;
    if (!credential) throw new Error('no credential');
    const raw = tlsConnect({
      host: '127.0.0.1',
      port: pay.inboundPort,
      key: credential.keyPem,
      cert: credential.certChainPem,
      rejectUnauthorized: false,
    });
    raw.on('error', () => undefined);
    t.teardown(() => raw.destroy());
    await new Promise((resolve) => raw.once('secureConnect', resolve));
    t.equal(raw.alpnProtocol, false, 'no ALPN offered, none chosen');
    t.equal(await ping(raw), 'ping', 'a raw TLS client is spliced to the app as before');
  });

  await t.test('a peer breaking the mux protocol is logged, counted and cut off', async (t) => {
    const credential = muxer.agent.identity.credential;
    if (!credential) throw new Error('no credential');
    const rogue = tlsConnect({
      host: '127.0.0.1',
      port: pay.inboundPort,
      key: credential.keyPem,
      cert: credential.certChainPem,
      rejectUnauthorized: false,
      ALPNProtocols: ['palisade-mux/1'],
    });
    rogue.on('error', () => undefined);
    await new Promise((resolve) => rogue.once('secureConnect', resolve));
    t.equal(rogue.alpnProtocol, 'palisade-mux/1');
    rogue.write(Buffer.from([0x63, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
    await closedWithin(rogue, () => 0);
    t.ok(
      await eventually(() =>
        pay.captured
          .events('mux.protocol_error')
          .some((e) => e['reason'] === 'bad-type' && e['peer_id'] === muxer.id),
      ),
      'mux.protocol_error logged with the peer and reason',
    );
    t.equal(
      sample(
        await pay.metrics(),
        'palisade_agent_mux_protocol_errors_total{direction="inbound",reason="bad-type"}',
      ),
      1,
    );
  });

  await t.test('revoking the peer closes all its streams at once', async (t) => {
    const held = await Promise.all([1, 2, 3].map(() => dial(muxer.upstreamPort())));
    held.forEach((s) => s.on('error', () => undefined));
    t.teardown(() => held.forEach((s) => s.destroy()));
    for (const s of held) t.equal(await ping(s), 'ping');
    const admin = env.admin();
    t.teardown(() => admin.close());
    const startedAt = performance.now();
    const closed = Promise.all(held.map((s) => closedWithin(s, () => startedAt)));
    await admin.revoke({ spiffeId: muxer.id, reason: 'key-compromise' });
    const ms = await closed;
    t.ok(Math.max(...ms) < 1000, `all closed within ${Math.max(...ms).toFixed(0)} ms`);
    t.ok(
      await eventually(
        () =>
          pay.captured.events('peer.revoked').filter((e) => e['peer_id'] === muxer.id).length >= 3,
      ),
      'peer.revoked logged for each connection',
    );
    const refused = await roundTrip(muxer.upstreamPort(), Buffer.from('again'));
    t.equal(refused.length, 0, 'a new connection from the revoked identity is refused');
    await admin.unrevoke({ spiffeId: muxer.id });
  });
});
