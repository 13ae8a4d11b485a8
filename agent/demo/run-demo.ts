import { connect } from 'node:net';
import { formatTable, type Io } from '../cli/output.js';
import {
  DEMO_TRUST_DOMAIN,
  httpGet,
  plaintextProbe,
  startDemoMesh,
  type CallResult,
  type DemoMesh,
  type DemoService,
} from './demo-mesh.js';

/** How long the demo waits for the agents' log lines about a call, in milliseconds. */
const SETTLE_MS = 150;

/** One line of the demo's table. */
interface DemoRow {
  step: string;
  caller: string;
  callee: string;
  expected: 'allow' | 'deny';
  result: 'allowed' | 'denied';
  reason: string;
  peerSeen: string;
}

/**
 * Runs the demo: a CA and four services (web, orders, batch, payments) behind
 * agents on loopback. web may call orders, batch may not, plaintext is refused;
 * web's request to payments passes with the `payments.read` scope in its access
 * token and is refused 403 without it; then web is revoked live and both its
 * open connection and its next call are cut.
 * Prints a table and returns whether everything behaved as expected.
 */
export async function runDemo(
  io: Io,
  options: { keep: boolean; untilStopped: () => Promise<void> },
): Promise<boolean> {
  io.out(
    `starting a CA and four services (web, orders, batch, payments) on loopback, trust domain ${DEMO_TRUST_DOMAIN}\n`,
  );
  const mesh = await startDemoMesh();
  try {
    const { web, orders, batch } = mesh.services;
    io.out(
      `orders allows only ns/demo/sa/web; web and batch reach orders through their agents;\n` +
        `payments allows web and needs an access token with scope payments.read for GET /payments\n\n`,
    );
    const rows: DemoRow[] = [];

    rows.push(
      await call('1', web, orders, 'allow', () => httpGet(web.upstreamPort as number, '/orders')),
    );
    rows.push(
      await call('2', batch, orders, 'deny', () =>
        httpGet(batch.upstreamPort as number, '/orders'),
      ),
    );
    rows.push(
      await call('3', { name: 'plaintext client' } as DemoService, orders, 'deny', () =>
        plaintextProbe(orders.inboundPort),
      ),
    );

    const { payments } = mesh.services;
    const paymentsPort = web.upstreamPorts[1] as number;
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    rows.push(
      await call('4', web, payments, 'allow', () =>
        httpGet(paymentsPort, '/payments', bearer(mesh.tokens.withScope)),
      ),
    );
    rows.push(
      await call('5', web, payments, 'deny', () =>
        httpGet(paymentsPort, '/payments', bearer(mesh.tokens.withoutScope)),
      ),
    );

    const live = await openKeepAlive(web.upstreamPort as number);
    const liveOk = live.firstAnswer.includes('"service":"orders"');
    const revokedAt = performance.now();
    await mesh.admin.revoke({ spiffeId: web.id, reason: 'key-compromise' });
    const closedAfterMs = await live.closed.then(() => performance.now() - revokedAt);
    rows.push({
      step: '6',
      caller: 'web',
      callee: 'orders',
      expected: 'deny',
      result: liveOk && closedAfterMs < 1000 ? 'denied' : 'allowed',
      reason: `web revoked: open connection closed after ${closedAfterMs.toFixed(0)} ms`,
      peerSeen: web.id,
    });
    rows.push(
      await call('7', web, orders, 'deny', () => httpGet(web.upstreamPort as number, '/orders')),
    );

    io.out(
      formatTable(
        [
          'step',
          'caller',
          'callee',
          'expected',
          'result',
          'reason',
          'peer identity seen by callee',
        ],
        rows.map((r) => [r.step, r.caller, r.callee, r.expected, r.result, r.reason, r.peerSeen]),
      ),
    );
    const ok = rows.every((r) => (r.expected === 'allow') === (r.result === 'allowed'));
    io.out(
      `\n${ok ? 'every call behaved as expected' : 'SOME CALLS DID NOT BEHAVE AS EXPECTED'}\n`,
    );
    if (options.keep) {
      await keepRunning(io, mesh, options.untilStopped);
    }
    return ok;
  } finally {
    await mesh.stop();
  }
}

async function call(
  step: string,
  caller: DemoService,
  callee: DemoService,
  expected: 'allow' | 'deny',
  make: () => Promise<CallResult>,
): Promise<DemoRow> {
  const seen = callee.events.length;
  const result = await make();
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const fresh = callee.events.slice(seen);
  const refusal = fresh.find(
    (e) =>
      e['event'] === 'policy.denied' ||
      e['event'] === 'peer.rejected' ||
      e['event'] === 'http.denied',
  );
  const allowed = result.ok && !refusal;
  let reason: string;
  let peerSeen = '-';
  if (refusal) {
    const scope = refusal['missing_scope'];
    reason = `${String(refusal['event'])}: ${String(refusal['reason'])}${typeof scope === 'string' ? ` ${scope}` : ''}`;
    peerSeen = typeof refusal['peer_id'] === 'string' ? refusal['peer_id'] : '(none)';
  } else if (allowed && caller.id) {
    const decision = callee.agent.explain(caller.id);
    reason = `${decision.reason}${decision.rule ? ` (${decision.rule})` : ''}, HTTP ${result.status}`;
    peerSeen = caller.id;
  } else {
    reason = result.error ?? `HTTP ${result.status}`;
  }
  return {
    step,
    caller: caller.name,
    callee: callee.name,
    expected,
    result: allowed ? 'allowed' : 'denied',
    reason,
    peerSeen,
  };
}

/** Opens a keep-alive HTTP connection, makes one request, and keeps the socket open. */
function openKeepAlive(port: number): Promise<{ firstAnswer: string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () =>
      socket.write('GET /orders HTTP/1.1\r\nHost: orders\r\nConnection: keep-alive\r\n\r\n'),
    );
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('data', (chunk: string) => resolve({ firstAnswer: chunk, closed }));
    socket.once('close', () => reject(new Error('keep-alive connection closed before any answer')));
  });
}

async function keepRunning(
  io: Io,
  mesh: DemoMesh,
  untilStopped: () => Promise<void>,
): Promise<void> {
  await mesh.admin.unrevoke({ spiffeId: mesh.services.web.id });
  io.out(`\nkept running (web's revocation lifted for new certificates); Ctrl-C to stop\n`);
  io.out(`CA: ${mesh.ca.address} (dir ${mesh.dir})\n`);
  for (const service of Object.values(mesh.services)) {
    const upstream = service.upstreamPort
      ? `, upstream to orders on 127.0.0.1:${service.upstreamPort}`
      : '';
    io.out(
      `${service.name}: admin http://${service.agent.adminAddress}/identity, inbound 127.0.0.1:${service.inboundPort}${upstream}\n`,
    );
  }
  await untilStopped();
}
