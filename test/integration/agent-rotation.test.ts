// Agents on loopback with a real CA, real sockets and 10-second certificates.
// It guarantees that certificates rotating several times under continuous
// traffic fail no connection and drop no live one; that agents keep serving
// while the CA is down and resume rotation once it is back on the same port;
// and that a peer whose certificate ran out is cut off at its notAfter, with
// `peer.expired` logged, while the expired agent reports itself not ready.
import t from 'tap';
import { makeCaDir, startTestCa, type TestCa } from '../helpers/ca-fixture.js';
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

/** Shortest lifetime the test CAs hand out, so `--cert-ttl 10s` is honoured. */
const MIN_TTL_SECONDS = 5;

/** How long traffic runs while certificates rotate. */
const TRAFFIC_MS = 16_000;

/** Pause between a long-lived connection's pings. */
const PING_EVERY_MS = 100;

/** Margin before its first admitted certificate expires at which a connection is let go. */
const LET_GO_MARGIN_MS = 2500;

/** How long the CA stays down while certificates are still valid. */
const OUTAGE_MS = 2500;

/** Short-lived connection loops running side by side. */
const SHORT_LOOPS = 2;

// The two scenarios have their own CAs, so they run side by side.
t.jobs = 2;

/** Certificates an agent got by renewing with its current one. */
function renewals(agent: MeshAgent): Record<string, unknown>[] {
  return agent.captured.events('cert.rotated').filter((e) => e['via'] === 'renewal');
}

/** The notAfter of the peer certificates of `agent`'s live connections. */
function liveNotAfters(agent: MeshAgent): Date[] {
  const seen: Date[] = [];
  agent.agent.live.closeWhere((conn) => void seen.push(conn.notAfter));
  return seen;
}

/** What a relay of long-lived connections saw. */
interface LongLivedTally {
  connections: number;
  pingsOk: number;
  pingsFailed: number;
  /** Connections the far side closed before the test let go of them. */
  dropped: number;
  /** Per connection, the fewest renewals either agent made while it was open. */
  rotationsSurvived: number[];
  firstError: string | undefined;
}

/** The live connections of `agent`: id to the peer certificate's notAfter, epoch ms. */
function liveConnections(agent: MeshAgent): Map<number, number> {
  const seen = new Map<number, number>();
  agent.agent.live.closeWhere((conn) => void seen.set(conn.id, conn.notAfter.getTime()));
  return seen;
}

/** The earliest peer notAfter (epoch ms) among live connections that were not in `known`. */
function earliestNewNotAfter(agents: MeshAgent[], known: Set<number>[]): number {
  const notAfters = agents.flatMap((a, n) =>
    [...liveConnections(a)].filter(([id]) => !known[n]?.has(id)).map(([, ms]) => ms),
  );
  return Math.min(...notAfters);
}

/**
 * Holds long-lived connections through `port`, one after another, until
 * `untilMs` (performance time), pinging each every PING_EVERY_MS. A connection
 * never outlives the certificates it was admitted with (the agents close it at
 * their notAfter, see the expiry test below), so each is let go a second
 * before the earliest of them and replaced; every rotation of both agents in
 * between happens under it.
 */
async function longLivedUntil(
  port: number,
  agents: MeshAgent[],
  untilMs: number,
): Promise<LongLivedTally> {
  const tally: LongLivedTally = {
    connections: 0,
    pingsOk: 0,
    pingsFailed: 0,
    dropped: 0,
    rotationsSurvived: [],
    firstError: undefined,
  };
  while (performance.now() < untilMs - 1000) {
    const known = agents.map((a) => new Set(liveConnections(a).keys()));
    const renewedBefore = agents.map((a) => renewals(a).length);
    const socket = await dial(port);
    const n = ++tally.connections;
    let isLetGo = false;
    socket.on('error', () => undefined);
    socket.once('close', () => {
      if (!isLetGo) tally.dropped++;
    });

    let letGoMs = untilMs;
    for (let i = 0; !socket.destroyed && performance.now() < letGoMs; i++) {
      const text = `ping-${n}-${i}`;
      const answer = await ping(socket, text, 2000).catch((err: Error) => err.message);
      if (answer === text) tally.pingsOk++;
      else {
        tally.pingsFailed++;
        tally.firstError ??= `connection ${n} ping ${i}: ${answer}`;
      }
      // Both agents hold the connection once it has carried a ping.
      if (i === 0) {
        const expiresMs = earliestNewNotAfter(agents, known);
        // Let go well before expiry: on a loaded machine one ping can take a second.
        letGoMs = Math.min(untilMs, expiresMs - LET_GO_MARGIN_MS - Date.now() + performance.now());
      }
      await new Promise((r) => setTimeout(r, PING_EVERY_MS));
    }

    tally.rotationsSurvived.push(
      Math.min(...agents.map((a, k) => renewals(a).length - (renewedBefore[k] ?? 0))),
    );
    isLetGo = true;
    socket.destroy();
  }
  return tally;
}

/** Opens short connections, one after the other, until `untilMs`; counts the echoes. */
async function roundTripsUntil(
  port: number,
  untilMs: number,
  tag: string,
): Promise<{ ok: number; failed: number; firstError: string | undefined }> {
  const tally = { ok: 0, failed: 0, firstError: undefined as string | undefined };
  for (let i = 0; performance.now() < untilMs; i++) {
    const text = `${tag}-${i}`;
    const echoed = (await roundTrip(port, Buffer.from(text))).toString();
    if (echoed === text) tally.ok++;
    else {
      tally.failed++;
      tally.firstError ??= `round trip ${i} got ${JSON.stringify(echoed)}`;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return tally;
}

t.test('with 10-second certificates on both sides', async (t) => {
  const caDir = makeCaDir('rotation.test');
  t.teardown(() => caDir.remove());
  let env: TestCa = await startTestCa(caDir.dir, { minTtlSeconds: MIN_TTL_SECONDS });
  t.teardown(() => env.ca.stop());
  const app = await startEchoApp(t);
  const server = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'orders',
    appPort: app.port,
    flags: { certTtl: '10s' },
  });
  const client = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'web',
    appPort: app.port,
    flags: { certTtl: '10s', upstream: [`0=127.0.0.1:${server.inboundPort}@${server.id}`] },
  });

  await t.test('rotation under continuous traffic fails no connection', async (t) => {
    const issued = client.agent.identity.credential;
    const lifetimeMs = issued ? issued.notAfter.getTime() - Date.now() : 0;
    t.ok(lifetimeMs <= 10_000 && lifetimeMs > 8_000, `certificate lasts ${lifetimeMs} ms`);

    const before = { server: renewals(server).length, client: renewals(client).length };
    const untilMs = performance.now() + TRAFFIC_MS;
    const [long, ...loops] = await Promise.all([
      longLivedUntil(client.upstreamPort(), [server, client], untilMs),
      ...Array.from({ length: SHORT_LOOPS }, (_, n) =>
        roundTripsUntil(client.upstreamPort(), untilMs, `loop${n}`),
      ),
    ]);
    const rotated = {
      server: renewals(server).length - before.server,
      client: renewals(client).length - before.client,
    };
    const trips = loops.reduce((a, b) => ({
      ok: a.ok + b.ok,
      failed: a.failed + b.failed,
      firstError: a.firstError ?? b.firstError,
    }));

    t.ok(
      rotated.server >= 2 && rotated.client >= 2,
      `renewals in ${TRAFFIC_MS} ms: server ${rotated.server}, client ${rotated.client}`,
    );
    // Renewal falls at 40%..60% of a lifetime, so 10-second certificates
    // renew at most every 4 s: a handful in the window, never a storm.
    const most = Math.ceil(TRAFFIC_MS / 4000) + 1;
    t.ok(
      rotated.server <= most && rotated.client <= most,
      `at most ${most} renewals each: server ${rotated.server}, client ${rotated.client}`,
    );
    t.equal(
      trips.failed,
      0,
      `${trips.ok} short round trips ok, ${trips.failed} failed (${trips.firstError ?? 'none'})`,
    );
    t.ok(trips.ok > 100, `${trips.ok} short connections made`);
    t.equal(
      long.pingsFailed,
      0,
      `${long.connections} long-lived connections: ${long.pingsOk} pings ok, ` +
        `${long.pingsFailed} failed (${long.firstError ?? 'none'})`,
    );
    t.equal(long.dropped, 0, 'no long-lived connection was dropped by a rotation');
    // A connection lives until shortly before the first certificate it was
    // admitted with expires, so those opened late in a certificate's life
    // see no renewal; the others must live through renewals on both sides.
    t.ok(
      long.rotationsSurvived.some((n) => n >= 1),
      `long-lived connections lived through renewals of both agents: ` +
        `${long.rotationsSurvived.join(', ')}`,
    );
    t.ok(long.pingsOk >= TRAFFIC_MS / (PING_EVERY_MS * 2), `${long.pingsOk} pings answered`);
  });

  await t.test(
    'agents keep serving while the CA is down and rotate again when it is back',
    async (t) => {
      const port = env.ca.port;
      await env.ca.stop();
      const stoppedAt = Date.now();
      const expiries = [server, client].map((a) => a.agent.identity.credential?.notAfter.getTime());
      const validForMs = Math.min(...expiries.map((ms) => (ms ?? 0) - stoppedAt));
      t.ok(validForMs > 3000, `certificates still valid for ${validForMs} ms`);

      t.ok(
        await eventually(() => client.captured.events('cert.rotation_failed').length > 0, 8000),
        'the client tries to renew and fails while the CA is down',
      );
      // Serve through the outage for a while, asking readiness as a probe would.
      const outage = { trips: 0, failed: 0, notReady: 0 };
      while (Date.now() - stoppedAt < OUTAGE_MS) {
        const text = `outage-${outage.trips++}`;
        const echoed = (await roundTrip(client.upstreamPort(), Buffer.from(text))).toString();
        if (echoed !== text) outage.failed++;
        for (const agent of [server, client]) {
          if ((await agent.admin('/readyz')).status !== 200) outage.notReady++;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      t.equal(outage.failed, 0, `${outage.trips} round trips during the outage, none failed`);
      t.equal(outage.notReady, 0, 'both agents answer /readyz 200 throughout the outage');

      const before = { server: renewals(server).length, client: renewals(client).length };
      env = await startTestCa(caDir.dir, {
        minTtlSeconds: MIN_TTL_SECONDS,
        listen: { host: '127.0.0.1', port },
      });
      const restartedAt = Date.now();
      const resumed = await eventually(
        () => renewals(server).length > before.server && renewals(client).length > before.client,
        10_000,
      );
      t.ok(
        resumed,
        `both agents renewed ${Date.now() - restartedAt} ms after the CA came back ` +
          `(down ${restartedAt - stoppedAt} ms)`,
      );
      const echoed = await roundTrip(client.upstreamPort(), Buffer.from('after'));
      t.equal(echoed.toString(), 'after', 'traffic flows on the new certificates');
    },
  );
});

t.test('with a 10-second client certificate and the CA gone', async (t) => {
  const caDir = makeCaDir('expiry.test');
  t.teardown(() => caDir.remove());
  const env = await startTestCa(caDir.dir, { minTtlSeconds: MIN_TTL_SECONDS });
  let caStopped = false;
  t.teardown(() => (caStopped ? undefined : env.ca.stop()));
  const app = await startEchoApp(t);
  const server = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'orders',
    appPort: app.port,
  });
  const client = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'web',
    appPort: app.port,
    flags: { certTtl: '10s', upstream: [`0=127.0.0.1:${server.inboundPort}@${server.id}`] },
  });

  await t.test('an expired peer certificate closes its connection at notAfter', async (t) => {
    const long = await dial(client.upstreamPort());
    long.on('error', () => undefined);
    t.equal(await ping(long), 'ping');
    await env.ca.stop();
    caStopped = true;

    const [notAfter] = liveNotAfters(server);
    t.ok(notAfter, 'the server tracks the connection');
    const expiresAtMs = notAfter?.getTime() ?? 0;
    const closedAtMs = await closedWithin(long, () => 0).then(() => Date.now());
    const lateMs = closedAtMs - expiresAtMs;
    t.ok(lateMs >= 0 && lateMs < 1000, `closed ${lateMs} ms after the peer's notAfter`);
    t.ok(
      await eventually(() =>
        server.captured
          .events('peer.expired')
          .some((e) => e['peer_id'] === client.id && e['reason'] === 'peer-cert-expired'),
      ),
      'peer.expired logged by the server with the client id',
    );
  });

  await t.test('the expired agent reports itself not ready', async (t) => {
    const notAfterMs = client.agent.identity.credential?.notAfter.getTime() ?? 0;
    t.ok(await eventually(() => Date.now() > notAfterMs, 12_000), 'the client certificate ran out');
    t.ok(
      await eventuallyStatus(client, 503, 2000),
      `client /readyz answers 503 after its notAfter ${new Date(notAfterMs).toISOString()}`,
    );
    t.equal((await server.admin('/readyz')).status, 200, 'the server, still valid, stays ready');
    t.ok(client.captured.events('cert.expired').length > 0, 'cert.expired logged by the client');
  });
});

/** Polls the agent's `/readyz` until it answers `status` or `timeoutMs` passes. */
async function eventuallyStatus(
  agent: MeshAgent,
  status: number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await agent.admin('/readyz')).status === status) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
